# The `ls3` command line in a slim image, for cluster sweeps (deploy/).
#   docker build -t ls3:latest .
#   docker run --rm -v "$PWD/sweep:/sweep" ls3:latest sweep local /sweep --jobs 4
FROM rust:1.95 AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY shaders shaders
COPY assets assets
COPY benches benches
RUN cargo build --release --locked --bin ls3

FROM debian:bookworm-slim
# The app's window libraries are loaded only when the app opens; the CLI needs none of them.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ls3 /usr/local/bin/ls3
ENTRYPOINT ["ls3"]
