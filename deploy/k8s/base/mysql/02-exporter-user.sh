# Sourced (not executed) by the mysql image's entrypoint on first initialisation, so its
# docker_process_sql helper is available. The exporter gets its own account, limited to
# what its default collectors read, instead of the application's or root's credentials.
# The password comes from a mounted Secret file and reaches mysql on stdin, never argv.
exporter_password="$(cat /etc/bloginfer/mysql-exporter/password)"
exporter_password="${exporter_password//\\/\\\\}"
exporter_password="${exporter_password//\'/\\\'}"
docker_process_sql --database=mysql <<EOSQL
CREATE USER IF NOT EXISTS 'exporter'@'127.0.0.1' IDENTIFIED BY '${exporter_password}' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'exporter'@'127.0.0.1';
GRANT SELECT ON performance_schema.* TO 'exporter'@'127.0.0.1';
EOSQL
unset exporter_password
