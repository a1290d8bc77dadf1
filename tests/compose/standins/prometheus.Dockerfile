# Stand-in for prom/prometheus:v3.5.0: Debian bookworm's `prometheus` package (2.42) with the
# official image's layout: the entrypoint /bin/prometheus (bookworm's /bin is /usr/bin), the
# configuration at /etc/prometheus/prometheus.yml, the data in /prometheus, run as `nobody`; plus
# wget for the healthcheck (the official image has busybox's). The project's configuration
# (prometheus/prometheus.compose.yml) uses only what both versions read.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends prometheus wget >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus /etc/prometheus \
    && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
