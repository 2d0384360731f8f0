# Image for the streaming worker (the Helm chart's default command is `nhi-detector worker`).
# Build: docker build -t nhi-detector:0.1.0 .
#
# The first stage builds the package's wheel with the compiled models (Cython and a C
# compiler; setup.py), the second installs that wheel on a slim image without a compiler.
# The image build fails if the models did not compile: pure Python models are about half
# as fast per event (README, figures) and a worker image should not fall back silently.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY detector detector
COPY models models
COPY streams streams
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/nhi_detector-*.whl)[rocksdb]" \
    && rm -rf /wheels \
    && nhi-detector --version | grep -q "models: compiled"
# Run unprivileged; the chart mounts the per-pod state directory writable for this user.
USER 10001
ENTRYPOINT ["nhi-detector"]
CMD ["worker"]
