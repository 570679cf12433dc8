//! The `resource` processor: attribute actions on every resource of every signal, typically to
//! rename what a receiver or detector found into the names dashboards use (`ClusterName`).

use super::attraction::{Action, ActionConfig, apply, validate_actions};
use crate::config::InvalidSetting;
use crate::pipeline::Payload;
use serde::Deserialize;

/// `processors.resource` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceProcessorSection {
    #[serde(default)]
    attributes: Vec<ActionConfig>,
}

/// A validated `resource` processor.
#[derive(Debug, Clone)]
pub struct ResourceProcessorConfig {
    /// As written, for `validate --print`.
    written: Box<ResourceProcessorSection>,
    actions: Vec<Action>,
}

impl crate::config::ComponentSection for ResourceProcessorSection {
    type Settings = ResourceProcessorConfig;

    fn validate(self) -> Result<ResourceProcessorConfig, Vec<crate::config::InvalidSetting>> {
        self.settings().map_err(|problem| vec![problem])
    }
}

impl ResourceProcessorSection {
    fn settings(&self) -> Result<ResourceProcessorConfig, InvalidSetting> {
        Ok(ResourceProcessorConfig {
            written: Box::new(self.clone()),
            actions: validate_actions("attributes", &self.attributes)?,
        })
    }
}

impl ResourceProcessorConfig {
    /// Runs the actions on each resource of the payload.
    pub fn process(&self, payload: &mut Payload) {
        payload.make_owned();
        let resources: Vec<&mut Vec<_>> = match payload {
            Payload::Encoded(_) => unreachable!("made owned above"),
            Payload::Traces(list) => list
                .iter_mut()
                .map(|r| &mut r.resource.get_or_insert_with(Default::default).attributes)
                .collect(),
            Payload::Metrics(list) => list
                .iter_mut()
                .map(|r| &mut r.resource.get_or_insert_with(Default::default).attributes)
                .collect(),
            Payload::Logs(list) => list
                .iter_mut()
                .map(|r| &mut r.resource.get_or_insert_with(Default::default).attributes)
                .collect(),
        };
        for attributes in resources {
            apply(&self.actions, attributes);
        }
    }
}

impl serde::Serialize for ResourceProcessorConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
    use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    /// ADOT's rename idiom: insert the new key from the old one, delete the old one.
    #[test]
    fn renames_resource_attributes_as_adots_configs_do() {
        let config: ResourceProcessorSection = serde_yaml_ng::from_str(
            "attributes: [{key: ClusterName, from_attribute: aws.ecs.cluster.name, action: insert}, {key: aws.ecs.cluster.name, action: delete}, {key: AvailabilityZone, from_attribute: cloud.zone, action: insert}, {key: cloud.zone, action: delete}]",
        )
        .unwrap();
        let config = config.settings().unwrap();
        let s = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Av::StringValue(v.into())),
            }),
            ..Default::default()
        };
        let mut payload = Payload::Metrics(vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    s("aws.ecs.cluster.name", "prod"),
                    s("cloud.availability_zone", "us-east-1a"),
                ],
                ..Default::default()
            }),
            ..Default::default()
        }]);
        config.process(&mut payload);
        let Payload::Metrics(list) = payload else {
            unreachable!()
        };
        assert_eq!(
            list[0].resource.as_ref().unwrap().attributes,
            vec![
                s("cloud.availability_zone", "us-east-1a"),
                s("ClusterName", "prod")
            ],
            "cloud.zone is absent: its rename is a silent no-op"
        );
        let empty: ResourceProcessorSection = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(
            empty.settings().unwrap_err().expected,
            "missing required field \"attributes\""
        );
    }
}
