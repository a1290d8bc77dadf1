# Stand-in for haproxy:3.2.6-bookworm (the scale-out overlay's load balancer): Debian bookworm's
# HAProxy (2.6), with the official image's layout: the configuration at
# /usr/local/etc/haproxy/haproxy.cfg, run in the foreground (-db) as the `haproxy` user. The
# project's configuration (haproxy/haproxy.cfg) uses only what both versions have.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends haproxy >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /usr/local/etc/haproxy /var/lib/haproxy \
    && chown haproxy:haproxy /var/lib/haproxy
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
