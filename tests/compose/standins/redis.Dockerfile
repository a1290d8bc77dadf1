# Stand-in for redis:7.4.5-bookworm (the scale-out overlay's Celery broker): Debian bookworm's
# redis-server (7.0), run as the `redis` user from /data (the official image's working folder and
# volume), with `redis-server` and `redis-cli` on the PATH as in the official image. The compose
# command passes every option the project relies on (--protected-mode no, --appendonly yes), so
# the official image's built-in defaults are not needed.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
