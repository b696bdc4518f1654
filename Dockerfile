# Builds the single hcp binary; used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hcp && cp target/release/hcp /usr/local/bin/hcp

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/hcp /usr/local/bin/hcp
COPY deploy/calendar/cn-workdays-2020-2026.json /usr/share/hcp/cn-workdays-2020-2026.json
USER nobody
EXPOSE 8080
ENTRYPOINT ["hcp"]
CMD ["serve"]
