# syntax=docker/dockerfile:1
# The assay image: the release binary on a distroless base (glibc, libstdc++, CA certificates, no shell), run as
# uid 65532. Build where registries are reachable:
#
#   docker build -t registry.example.com/assay:0.1.0 .        # or: podman build / buildah bud
#
# `assay serve` (the default command) listens on 0.0.0.0:8080 and keeps its data in /var/lib/assay (mount a
# volume there); the Kubernetes manifests run `assay gateway` and `assay worker` from the same image.
# scripts/image-from-scratch.sh proves the runtime stage on machines without registry access.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin assay \
 && cp target/release/assay /assay \
 # The release profile's line tables are 170 MB of the binary; the image keeps the symbols only.
 && strip --strip-debug /assay \
 # The one library the binary links that the distroless base lacks (rdkafka's compression).
 && mkdir -p /runtime/usr/lib /runtime/var/lib/assay \
 && cp "$(ldconfig -p | awk '/libz\.so\.1 / {print $NF; exit}')" /runtime/usr/lib/libz.so.1

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="assay" \
      org.opencontainers.image.description="Prices jewelry from 3D models: STL and glTF in, metal weight and a decimal price out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=build /runtime/usr/lib/libz.so.1 /usr/lib/libz.so.1
COPY --from=build --chown=65532:65532 /runtime/var/lib/assay /var/lib/assay
COPY --from=build /assay /usr/local/bin/assay
USER 65532:65532
WORKDIR /var/lib/assay
ENV ASSAY_LISTEN=0.0.0.0:8080 \
    ASSAY_DATA=/var/lib/assay
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/assay"]
CMD ["serve"]
