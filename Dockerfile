# syntax=docker/dockerfile:1
#
# Images of the TMC binaries that run in clusters. One build stage, one runtime stage per
# binary; the last one (workload-syncer) is the default target:
#
#   docker build -t workload-syncer:dev .
#   docker build --target tmc-controller -t tmc-controller:dev .
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t workload-syncer:dev .
#
# The runtime is distroless/static running as nonroot (65532:65532), which is what the
# Deployment written by `kubectl tmc workload sync` expects (runAsNonRoot, read-only root
# filesystem, no capabilities).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that source changes do not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=v0.0.0-dev
ARG COMMIT=unknown
ARG BUILD_DATE=1970-01-01T00:00:00Z
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -o /out/ \
      -ldflags "-s -w \
        -X github.com/tmc-dev/tmc/pkg/version.gitVersion=${VERSION} \
        -X github.com/tmc-dev/tmc/pkg/version.gitCommit=${COMMIT} \
        -X github.com/tmc-dev/tmc/pkg/version.buildDate=${BUILD_DATE}" \
      ./cmd/workload-syncer ./cmd/tmc-controller

FROM gcr.io/distroless/static:nonroot AS tmc-controller
COPY --from=build /out/tmc-controller /tmc-controller
USER 65532:65532
ENTRYPOINT ["/tmc-controller"]

FROM gcr.io/distroless/static:nonroot AS workload-syncer
COPY --from=build /out/workload-syncer /workload-syncer
USER 65532:65532
# 8080: /metrics; 8081: /healthz, /livez, /readyz.
EXPOSE 8080 8081
ENTRYPOINT ["/workload-syncer"]
