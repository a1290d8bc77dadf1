# Stand-in for python:3.11.14-slim-bookworm (no image registry can be reached in CI).
# Debian bookworm's python3.11 in a virtual environment at /usr/local, so that `python` and
# `pip` are where the official image has them (/usr/local/bin) and `pip install` needs no flag.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /usr/local \
    && /usr/local/bin/pip install --quiet --no-cache-dir --upgrade pip
# pip trusts the system store (where the base image put the machine's CA certificates)
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
