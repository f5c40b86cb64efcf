# The demo service of docker-compose.yml: the seed application's 13 jobs on
# APScheduler, exporting their tagged logs over OTLP to the collector.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install ".[scheduler]" \
    && useradd --system --uid 10002 --no-create-home --home-dir /nonexistent demo

USER demo
WORKDIR /tmp
# SIGINT (docker-compose.yml sets stop_signal) ends the demo cleanly: it
# flushes what it has not exported yet before exiting.
CMD ["otel-jobtags", "demo", "--duration", "0", "--log-file", "/tmp/otel-jobtags-demo.log"]
