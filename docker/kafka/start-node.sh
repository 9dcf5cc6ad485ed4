#!/bin/sh
# Start one KRaft node: write its properties from KAFKA_PROPERTIES, format its storage on
# the first start only (a restarted container keeps its log directory), run the broker.
set -euf  # -f: the classpath wildcard is for java, not the shell
printf '%s' "$KAFKA_PROPERTIES" > /opt/kafka/server.properties
JAVA="java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.yaml -cp /opt/kafka/libs/*"
$JAVA kafka.tools.StorageTool format -t "$CLUSTER_ID" -c /opt/kafka/server.properties --ignore-formatted
exec $JAVA kafka.Kafka /opt/kafka/server.properties
