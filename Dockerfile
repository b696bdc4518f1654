# syntax=docker/dockerfile:1
# The one hcp image: every component is `hcp serve --components …` of the same binary
# (docker-compose.yml, deploy/k8s). Multi-stage: dependencies are compiled in their own layer
# (cargo-chef: a change to hcp's sources does not rebuild them), the release binary is copied
# into a slim Debian with no compiler, no package manager run and a numeric non-root user.
# Not built on the project's machines (no Docker engine there; docs/deploy.md).
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The dependency list only (Cargo.toml files and Cargo.lock), as a recipe.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p hcp --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p hcp && cp target/release/hcp /usr/local/bin/hcp

# The binary needs libc, libgcc_s, libm and zlib (librdkafka's), all in the slim image; TLS roots
# for webhooks are compiled in (webpki-roots). A shell and sleep stay for the preStop hook.
FROM debian:bookworm-slim
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (deploy/k8s), compose checks its dependencies.
# checkov:skip=CKV_DOCKER_2:Kubernetes' probes, not Docker's HEALTHCHECK, watch the process
COPY --from=build /usr/local/bin/hcp /usr/local/bin/hcp
# The working-day calendar, for `hcp calendar import /usr/share/hcp/cn-workdays-2020-2026.json`.
COPY deploy/calendar/cn-workdays-2020-2026.json /usr/share/hcp/cn-workdays-2020-2026.json
# Numeric, so Kubernetes' runAsNonRoot can verify it (deploy/k8s runs it as 10001 too).
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["hcp"]
CMD ["serve"]
