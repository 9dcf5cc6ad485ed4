# PostgreSQL for the containerized tests, from Debian's package (no registry needed).
# Listens on 127.0.0.1:$PGPORT (host networking), trust authentication, user postgres.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
USER postgres
ENV PGPORT=5432 PGDATA=/var/lib/postgresql/data
# initdb only on first start, so the container can be restarted (a database-restart fault).
CMD ["sh", "-c", "[ -f \"$PGDATA/PG_VERSION\" ] || /usr/lib/postgresql/15/bin/initdb -A trust -U postgres >/dev/null; exec /usr/lib/postgresql/15/bin/postgres -c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories=/tmp"]
