//! The `sql` block from the database semantic conventions.

use super::*;

pub(super) const SQL_DATABASES: &[&str] = &[
    "db2",
    "derby",
    "hive",
    "mariadb",
    "mssql",
    "mysql",
    "oracle",
    "postgresql",
    "sqlite",
    "teradata",
    "other_sql",
];

pub(super) fn make_sql<'a>(
    span: &SpanView<'a>,
    remaining: &mut Attributes<'a>,
) -> Option<SqlData<'a>> {
    let system = remaining.get("db.system").map(value_str)?;
    if !SQL_DATABASES.contains(&&*system) {
        return None;
    }
    let take = |remaining: &mut Attributes<'a>, key: &str| {
        remaining.remove(key).map(value_str).unwrap_or_default()
    };
    take(remaining, "db.system");
    let statement = take(remaining, "db.statement");
    let user = take(remaining, "db.user");
    let mut connection = take(remaining, "db.connection_string");
    let name = take(remaining, "db.name");
    if connection.is_empty() {
        connection = Cow::Borrowed("localhost");
    }
    Some(SqlData {
        connection_string: Some(Cow::Owned(format!("{connection}/{name}"))),
        url: non_empty(span.name),
        sanitized_query: non_empty(statement),
        database_type: Some(system),
        user: non_empty(user),
    })
}
