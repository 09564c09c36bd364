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
# An empty /tmp (mode 1777: opening a key file stages it there), the package's config (with no
# power-off command) at /etc/pew/pew.toml, and the node's runtime folder (locks, status) owned
# by the image's user. scripts/release stages them with their modes.
# (A COPY comes first: the classic builder gives an ARG step its own platform, not the target's.)
COPY dist/image/rootfs/ /
COPY --chown=65532:65532 dist/image/runtime/ /run/
# CA roots, so https RPC endpoints and Open-Meteo verify.
COPY dist/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ARG TARGETARCH
# The static musl binary for this image's architecture (amd64 → x86_64, arm64 → aarch64).
COPY dist/image/${TARGETARCH}/pew /usr/bin/pew
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HOME=/var/lib/pew \
    PEW_CONFIG=/etc/pew/pew.toml \
    PEW_NODE__RUNTIME_DIR=/run/pew
# Not root: the Docker socket's group is given at run time (--group-add).
USER 65532:65532
WORKDIR /var/lib/pew
# The node's HTTP API answers /health while its rounds complete.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["/usr/bin/pew", "health"]
ENTRYPOINT ["/usr/bin/pew"]
CMD ["run"]
