# syntax=docker/dockerfile:1
# The animoca-trade binary in a small runtime image (every role: serve, index,
# work, all, migrate, deploy). Build: docker build -t animoca-trade .
# Run:   docker compose up   (docker-compose.yml: postgres, redis, api, indexer, worker)

# ---- build: the release binary (contract artifacts and migrations are compiled in)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY crates crates
COPY bench bench
COPY contracts/artifacts contracts/artifacts
# engineioxide with a local patch ([patch.crates-io] in Cargo.toml, vendor/README.md)
COPY vendor vendor
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package animoca-trade --bin animoca-trade \
    && cp target/release/animoca-trade /usr/local/bin/animoca-trade

# ---- runtime: Debian slim, CA certificates, a non-root user, nothing else
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 animoca \
    && useradd --system --uid 10001 --gid animoca --no-create-home --shell /usr/sbin/nologin animoca
COPY --from=build /usr/local/bin/animoca-trade /usr/local/bin/animoca-trade
USER animoca:animoca
ENV PORT=3000
EXPOSE 3000
ENTRYPOINT ["animoca-trade"]
CMD ["serve"]
