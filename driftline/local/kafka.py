"""A real single-node Apache Kafka broker (KRaft) from Maven Central jars, run by Java 17.

The jars are fetched once with Maven into ``<cache_dir>/kafka-<version>/libs`` (outside the
work tree, so reruns are offline); storage is formatted on first start.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from driftline.local.process import LocalServiceError, ManagedProcess, port_is_free

__all__ = ["KafkaStatus", "LocalKafka"]

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.driftline</groupId><artifactId>kafka-local</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>2.24.3</version></dependency>
  </dependencies>
  <build><plugins><plugin><groupId>org.apache.maven.plugins</groupId>
    <artifactId>maven-dependency-plugin</artifactId><version>3.6.1</version></plugin></plugins></build>
</project>
"""

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""

_READY_LINE = "Kafka Server started"


@dataclass(frozen=True)
class KafkaStatus:
    running: bool
    pid: int | None
    bootstrap: str


@dataclass(frozen=True)
class LocalKafka:
    """Lifecycle of one local broker: ``ensure_jars``, ``start``, ``status``, ``stop``."""

    version: str
    cache_dir: Path
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "1G"
    start_timeout_s: float = 90.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir.expanduser() / f"kafka-{self.version}" / "libs"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("kafka", self.data_dir)

    @property
    def server_log(self) -> Path:
        return self.data_dir / "kafka-server.log"

    def ensure_jars(self) -> Path:
        """Fetch the broker's jars with Maven unless they are cached already."""
        if self.libs_dir.is_dir() and any(self.libs_dir.glob("kafka_2.13-*.jar")):
            return self.libs_dir
        _require("mvn", "Maven is needed once to fetch the Kafka jars (apt-get install maven)")
        build_dir = self.libs_dir.parent
        build_dir.mkdir(parents=True, exist_ok=True)
        (build_dir / "pom.xml").write_text(_POM.format(version=self.version))
        tmp_libs = build_dir / "libs.partial"
        shutil.rmtree(tmp_libs, ignore_errors=True)
        cmd = [
            "mvn", "-B", "-q", "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={tmp_libs}",
        ]
        done = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise LocalServiceError("Maven could not fetch the Kafka jars: " + " | ".join(last))
        tmp_libs.rename(self.libs_dir)
        return self.libs_dir

    def status(self) -> KafkaStatus:
        pid = self.process.pid()
        return KafkaStatus(running=pid is not None, pid=pid, bootstrap=self.bootstrap)

    def start(self) -> KafkaStatus:
        """Start the broker in the background and wait until it answers; idempotent."""
        current = self.status()
        if current.running:
            return current
        _require("java", "Java 17 is needed to run the local Kafka broker (apt-get install openjdk-17-jre)")
        for port in (self.port, self.controller_port):
            if not port_is_free(port):
                raise LocalServiceError(f"port {port} is taken; choose another with --port/--controller-port")
        libs = self.ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        classpath = f"{libs}/*"
        log4j = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            fmt = subprocess.run(
                ["java", log4j, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", _cluster_id(), "-c", str(props)],
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise LocalServiceError(f"formatting Kafka storage failed: {fmt.stderr.strip()[-500:]}")
        self.server_log.unlink(missing_ok=True)
        pid = self.process.start(
            ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC", log4j,
             "-cp", classpath, "kafka.Kafka", str(props)],
            ready=self._ready,
            timeout_s=self.start_timeout_s,
        )
        return KafkaStatus(running=True, pid=pid, bootstrap=self.bootstrap)

    def stop(self) -> bool:
        return self.process.stop()

    def _ready(self) -> bool:
        if not self.server_log.exists() or _READY_LINE not in self.server_log.read_text(errors="replace"):
            return False
        with socket.socket() as sock:
            sock.settimeout(1.0)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def _write_config(self) -> Path:
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(log=self.server_log))
        props = self.data_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir / 'logs'}",
                    "num.partitions=1",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=3",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.segment.bytes=67108864",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        return props


def _require(binary: str, hint: str) -> None:
    if shutil.which(binary) is None:
        raise LocalServiceError(f"`{binary}` not found on PATH: {hint}")


def _cluster_id() -> str:
    """A random cluster id as Kafka's ``Uuid.randomUuid`` makes one: never starting with "-".

    One base64 id in 64 would otherwise start with "-", which the storage tool's argument
    parser reads as an option ("argument --cluster-id/-t: expected one argument").
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
