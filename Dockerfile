# syntax=docker/dockerfile:1
# microcred: the package is built and installed into a virtualenv in one stage, and that
# virtualenv alone is copied into a slim runtime that runs as an unprivileged user.
#
#   docker build -t microcred .
#   docker run --rm -v microcred-data:/data -v microcred-keys:/keys -e … microcred microcred db upgrade
#   docker run -p 8000:8000 -v microcred-data:/data -v microcred-keys:/keys \
#     -e MICROCRED_BASE_URL=https://badges.example.org \
#     -e MICROCRED_ADMIN_TOKEN=… -e MICROCRED_KEYS_PASSPHRASE=… microcred
#
# The default command only serves: migrations run once per deployment, as their own step (the
# `migrate` service of deploy/compose.yaml), never once per replica.

# --- builder --------------------------------------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The same path as in the runtime stage: a virtualenv's scripts name their interpreter absolutely.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Every dependency ships as a binary wheel (psycopg[binary], cryptography, Pillow): no compiler.
# pip compiles the bytecode here, because the runtime user cannot write it into the venv.
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install .

# An installed package finds its Alembic scripts under the environment's data prefix,
# <venv>/share/microcred/migrations (app/core/migrate.py; alembic.ini is not needed). Then a
# throwaway migration fails the build, not the first start, if that ever stops working.
COPY migrations /opt/venv/share/microcred/migrations
RUN MICROCRED_DATABASE_URL=sqlite:////tmp/check.db MICROCRED_KEYS_DIR=/tmp/keys microcred db upgrade \
 && rm -rf /tmp/check.db* /tmp/keys

# --- runtime --------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="microcred" \
      org.opencontainers.image.description="Issue and verify Open Badges 3.0 micro-credentials as VC-JWTs" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MICROCRED_ENV=production \
    MICROCRED_DATABASE_URL=sqlite:////data/microcred.db \
    MICROCRED_KEYS_DIR=/keys \
    MICROCRED_WORKERS=2

RUN groupadd --system --gid 10001 microcred \
 && useradd --system --uid 10001 --gid microcred --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin microcred \
 && mkdir -p /data /keys \
 && chown microcred:microcred /data /keys \
 && chmod 0700 /keys

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /data
# The database (SQLite) and the issuers' private keys: back them up together.
VOLUME ["/data", "/keys"]
EXPOSE 8000

# slim has no curl; urllib without proxies, and any non-2xx answer (503: database down) fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8000/health', timeout=4)"]

# Serve only, with MICROCRED_WORKERS worker processes. Any other command runs instead, e.g.
# `microcred db upgrade` or `microcred issuer create --name … --url …`.
CMD ["microcred", "serve", "--host", "0.0.0.0", "--port", "8000"]
