#!/bin/sh
# Container entry point: bring the database to the newest schema, then run the service.
# With arguments, run those instead of the server (after migrating), e.g.
#   docker run --rm -v microcred-data:/data -v microcred-keys:/keys IMAGE microcred issuer create --name … --url …
set -eu

microcred db upgrade

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

# exec: the server replaces this shell as PID 1, so `docker stop`'s SIGTERM reaches it directly.
exec microcred serve --host 0.0.0.0 --port 8000 --workers "${MICROCRED_WORKERS:-2}"
