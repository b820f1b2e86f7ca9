# entraproxy container image: a static binary on distroless, run as nonroot.
#
# One architecture (the builder's):
#   docker build -t entraproxy --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) .
# Multi-arch (amd64 + arm64) with buildx; the build stage runs on the builder's
# own platform and cross-compiles, so no emulation is needed:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) \
#     -t REGISTRY/entraproxy:TAG --push .
#
# internal/buildcheck runs this file's go build command outside Docker for both
# architectures, so keep the build in the single RUN line that calls go build.

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS TARGETARCH VERSION=dev COMMIT=unknown
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o /out/entraproxy ./cmd/entraproxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/entraproxy /entraproxy
USER 65532:65532
# In a container, 127.0.0.1 is reachable only from the container itself (or
# from containers sharing its network namespace), so the image listens on all
# interfaces. That exposes the proxy, and the Azure identity it spends, to
# anyone who can reach the port. entraproxy therefore refuses to start on a
# non-loopback ENTRAPROXY_LISTEN unless you choose one of:
#   ENTRAPROXY_INBOUND_KEYS=...               clients must present a key (gateway mode)
#   ENTRAPROXY_ALLOW_UNAUTHENTICATED=true     the network already restricts who connects
#   ENTRAPROXY_LISTEN=127.0.0.1:8080          the app shares this container's network
#                                             namespace (Kubernetes pod, compose network_mode: service:...)
# The admin listener (/healthz, /readyz, /metrics) carries no credential and
# listens on all interfaces so kubelet and Prometheus can reach it.
ENV ENTRAPROXY_LISTEN=0.0.0.0:8080 ENTRAPROXY_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
ENTRYPOINT ["/entraproxy"]
