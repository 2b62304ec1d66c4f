# One image for the collector and every sample service: they share a workspace and a
# build, and the entry point picks the binary (`hopline`, `gateway`, `user-service`,
# `order-service`, `email-service`, `loadgen`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-unknown-unknown && cargo xtask ui && cargo build --release --locked \
        -p hopline -p gateway -p user-service -p order-service -p email-service -p loadgen \
    && mkdir /out \
    && cp target/release/hopline target/release/gateway target/release/user-service \
          target/release/order-service target/release/email-service target/release/loadgen /out/ \
    && cp -r target/site /site

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /data hopline \
    && mkdir -p /data/hopline /data/orders && chown -R hopline /data
COPY --from=build /out/ /usr/local/bin/
# The UI bundle where hopline looks by default: `site` beside its binary's directory.
COPY --from=build /site /usr/local/site
USER hopline
WORKDIR /data
ENTRYPOINT []
# Every interface (the container's network), so tokens are required: set
# HOPLINE_INGEST_TOKENS and HOPLINE_QUERY_TOKENS (or --tokens-file), or pass --insecure.
CMD ["hopline", "--data-dir", "/data/hopline", "--otlp-grpc-addr", "0.0.0.0:4317", "--otlp-http-addr", "0.0.0.0:4318", "--http-addr", "0.0.0.0:16686"]
