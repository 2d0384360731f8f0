# Image for the streaming worker (the Helm chart's default command is `nhi-detector worker`).
# Build: docker build -t nhi-detector:0.1.0 .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY detector detector
COPY models models
COPY streams streams
RUN pip install --no-cache-dir '.[rocksdb]'
# Run unprivileged; the chart mounts the per-pod state directory writable for this user.
USER 10001
ENTRYPOINT ["nhi-detector"]
CMD ["worker"]
