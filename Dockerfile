# pew as a container image: one static binary (musl) on an empty base, for amd64 and arm64.
# scripts/release builds the binaries into dist/ first; then, from the top of the checkout:
#
#   docker build --build-arg TARGETARCH=arm64 -t pew:arm64 .     (or amd64; BuildKit sets
#                                                                  TARGETARCH by itself)
#
# Run it on a Pi (the README has the whole line): the Docker socket, the state folder mounted
# at the same path inside and out (task folders are bind mounts made by the host's engine),
# the config, the key file's password, and the energy source's device.
FROM scratch
ARG TARGETARCH
# The static musl binary for this image's architecture (amd64 → x86_64, arm64 → aarch64).
COPY dist/image/${TARGETARCH}/pew /usr/bin/pew
# CA roots, so https RPC endpoints and Open-Meteo verify.
COPY dist/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HOME=/var/lib/pew \
    PEW_CONFIG=/etc/pew/pew.toml
# Not root: the Docker socket's group is given at run time (--group-add).
USER 65532:65532
WORKDIR /var/lib/pew
# The node's HTTP API answers /health while its rounds complete.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["/usr/bin/pew", "health"]
ENTRYPOINT ["/usr/bin/pew"]
CMD ["run"]
