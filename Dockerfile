# otel-sidecar image: the binary as entrypoint, /healthcheck with ADOT's contract, the ECS
# default config embedded (no arguments = the seed config; AOT_CONFIG_CONTENT overrides it).
#   docker build -t otel-sidecar .
#   docker run --rm -e AWS_REGION=us-east-1 otel-sidecar validate

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY config config
RUN cargo build --release --locked \
    && mkdir -p /out \
    && cp target/release/otel-sidecar /out/otel-sidecar \
    && ln -s otel-sidecar /out/healthcheck

# glibc, libgcc and CA certificates, no shell; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /
# ADOT's /etc/ecs/ configs, for task definitions that pass --config=/etc/ecs/<name>.
COPY config/ecs/ /etc/ecs/
ENV RUN_IN_CONTAINER=True
USER nonroot
EXPOSE 4317 4318 2000/udp 2000 8125/udp 13133
ENTRYPOINT ["/otel-sidecar"]
