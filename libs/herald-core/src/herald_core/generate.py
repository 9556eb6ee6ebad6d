"""Generated artifacts, made from the contracts and the topic table (never written by hand):

    docs/schemas/<type>.json           JSON Schema of each message body
    docs/asyncapi.yaml                 AsyncAPI 3.0: channels, messages, who sends and receives
    deploy/k8s/kafka-topics.yaml       Strimzi KafkaTopic resources
    deploy/k8s/kafka-users.yaml        Strimzi KafkaUser resources with ACLs: each service may write
                                       only the topics it produces (only the guard writes approvals)
    deploy/k8s/herald.yaml             the six services: Deployments with probes and metrics, Services

`make generate` writes them; `make lint` fails when they are stale.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from herald_core.contracts import MESSAGE_TYPES
from herald_core.envelope import Envelope
from herald_core.topics import AUDIT, CONSUMERS, DEAD_LETTER_TOPICS, TOPICS, TopicSpec, all_topics

SERVICES = ("ingest", "retrieval", "planner", "guard", "review", "executor")
CLIENTS = ("cli",)  # the `herald` command (and upstream systems given its credentials)
CLUSTER = "herald"
IMAGE = "ghcr.io/herald/herald:0.1.0"


@dataclass(frozen=True)
class Workload:
    """How a service runs on Kubernetes: its HTTP port (API or health/metrics), gRPC port, replicas."""

    service: str
    http_port: int
    replicas: int
    grpc_port: int | None = None
    public_http: bool = False  # ingest, review and the executor (read-only tools) serve an API on their HTTP port
    # the settings that place that port: ingest and review read HTTP_PORT/HTTP_HOST, the others OPS_PORT/OPS_HOST
    port_settings: Literal["HTTP", "OPS"] = "OPS"


WORKLOADS = (
    Workload("ingest", 8101, 2, public_http=True, port_settings="HTTP"),
    Workload("retrieval", 8102, 2, grpc_port=8202),
    Workload("planner", 8103, 2),
    Workload("guard", 8104, 2),
    Workload("review", 8105, 2, public_http=True, port_settings="HTTP"),
    Workload("executor", 8106, 2, public_http=True),
)


def _model_name(message_type: str) -> str:
    return MESSAGE_TYPES[message_type].__name__


def json_schemas() -> dict[str, dict[str, Any]]:
    return {t: model.model_json_schema() for t, model in sorted(MESSAGE_TYPES.items())}


def asyncapi() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for message_type, model in sorted(MESSAGE_TYPES.items()):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        messages[model.__name__] = {
            "name": message_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else message_type,
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventsKafkaHeaders"},
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
    schemas["CloudEventsKafkaHeaders"] = {
        "type": "object",
        "description": "CloudEvents 1.0 attributes in Kafka headers (binary content mode), see Envelope.",
        "properties": {
            f"ce_{name}": {"type": "string", "description": field.description or ""}
            for name, field in (
                ("id", Envelope.model_fields["id"]),
                ("source", Envelope.model_fields["source"]),
                ("type", Envelope.model_fields["type"]),
                ("time", Envelope.model_fields["time"]),
                ("subject", Envelope.model_fields["subject"]),
                ("tenant", Envelope.model_fields["tenant"]),
                ("correlationid", Envelope.model_fields["correlation_id"]),
                ("causationid", Envelope.model_fields["causation_id"]),
                ("traceparent", Envelope.model_fields["traceparent"]),
            )
        },
        "required": ["ce_id", "ce_source", "ce_type", "ce_tenant", "ce_correlationid"],
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in TOPICS:
        channel_id = spec.name.replace(".", "-")
        channels[channel_id] = {
            "address": spec.name,
            "description": f"{spec.doc} Key: {spec.key.value}. Partitions: {spec.partitions}.",
            "messages": {
                _model_name(t): {"$ref": f"#/components/messages/{_model_name(t)}"} for t in spec.message_types
            },
        }
        for producer in spec.producers:
            if producer != "*":
                operations[f"{producer}-sends-{channel_id}"] = {
                    "action": "send",
                    "channel": {"$ref": f"#/channels/{channel_id}"},
                    "summary": f"{producer} publishes (with an audit copy, in one transaction)",
                }
        for consumer in spec.consumers:
            operations[f"{consumer}-receives-{channel_id}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"{consumer} consumes (read_committed)",
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Herald",
            "version": "1.0.0",
            "description": "Herald's Kafka topics and messages, generated from herald-core.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def kafka_topics() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {"name": spec.name, "labels": {"strimzi.io/cluster": CLUSTER}},
            "spec": {
                "topicName": spec.name,
                "partitions": spec.partitions,
                "replicas": 3,
                "config": {"min.insync.replicas": "2", **spec.config()},
            },
        }
        for spec in all_topics()
    ]


def _writes(service: str) -> list[TopicSpec]:
    topics = [s for s in TOPICS if service in s.producers]
    topics += [s for s in DEAD_LETTER_TOPICS if service in s.producers]
    if topics:
        topics.append(AUDIT)  # every producer writes its audit copies
    return topics


def _reads(service: str) -> list[TopicSpec]:
    return [s for s in TOPICS if service in s.consumers]


def kafka_users() -> list[dict[str, Any]]:
    users = []
    for service in SERVICES + CLIENTS:
        acls: list[dict[str, Any]] = []
        for spec in _writes(service):
            acls.append(
                {
                    "resource": {"type": "topic", "name": spec.name, "patternType": "literal"},
                    "operations": ["Write", "Describe"],
                }
            )
        for spec in _reads(service):
            acls.append(
                {
                    "resource": {"type": "topic", "name": spec.name, "patternType": "literal"},
                    "operations": ["Read", "Describe"],
                }
            )
        if service in CONSUMERS:
            acls.append(
                {
                    "resource": {"type": "group", "name": f"herald-{service}-", "patternType": "prefix"},
                    "operations": ["Read", "Describe"],
                }
            )
        if _writes(service):
            acls.append(
                {
                    "resource": {"type": "transactionalId", "name": f"herald-{service}-", "patternType": "prefix"},
                    "operations": ["Write", "Describe"],
                }
            )
        users.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {"name": f"herald-{service}", "labels": {"strimzi.io/cluster": CLUSTER}},
                "spec": {"authentication": {"type": "tls"}, "authorization": {"type": "simple", "acls": acls}},
            }
        )
    return users


EXTRA_ENV = {
    "retrieval": {"WEAVIATE_HOST": "herald-weaviate", "WEAVIATE_HTTP_PORT": "8080", "WEAVIATE_GRPC_PORT": "50051"},
    "executor": {
        "SMTP_HOST": "smtp-relay",
        "SMTP_PORT": "587",
        "SMTP_STARTTLS": "true",
        "CALDAV_URL": "http://herald-caldav:5232/",
    },
    "ingest": {"PUBLIC_BASE_URL": "https://herald.example.com"},
}


def kubernetes_workloads() -> list[dict[str, Any]]:
    """A Deployment (and Service where something calls it) per service; configuration from one ConfigMap."""
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "herald", "labels": {"app.kubernetes.io/part-of": "herald"}},
            "data": {
                "HERALD_KAFKA_BOOTSTRAP": "herald-kafka-bootstrap:9093",
                "HERALD_TENANTS_DIR": "/etc/herald/tenants",
                "HERALD_KEYS_DIR": "/etc/herald/keys",
                "HERALD_PLANNER_RETRIEVAL_TARGET": "herald-retrieval:8202",
                "HERALD_GUARD_RETRIEVAL_TARGET": "herald-retrieval:8202",
                "HERALD_PLANNER_EXECUTOR_URL": "http://herald-executor:8106",
                "HERALD_PLANNER_INGEST_URL": "http://herald-ingest:8101",
                "HERALD_LOG_LEVEL": "INFO",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "herald-assets", "labels": {"app.kubernetes.io/part-of": "herald"}},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
        },
    ]
    for w in WORKLOADS:
        name = f"herald-{w.service}"
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "herald"}
        prefix = f"HERALD_{w.service.upper()}_"
        env: list[dict[str, Any]] = [
            {"name": f"{prefix}{w.port_settings}_PORT", "value": str(w.http_port)},
            {"name": f"{prefix}{w.port_settings}_HOST", "value": "0.0.0.0"},
            # names the transactional producers; a replaced pod gets a new name, so a transaction its
            # predecessor left open is aborted by the broker's transaction timeout (15 s), not fenced at once
            {"name": "HERALD_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "HERALD_PG_DSN", "valueFrom": {"secretKeyRef": {"name": name, "key": "pg-dsn"}}},
        ]
        env += [{"name": f"{prefix}{key}", "value": value} for key, value in EXTRA_ENV.get(w.service, {}).items()]
        ports = [{"name": "http", "containerPort": w.http_port}]
        if w.grpc_port:
            env += [
                {"name": f"{prefix}GRPC_PORT", "value": str(w.grpc_port)},
                {"name": f"{prefix}GRPC_HOST", "value": "0.0.0.0"},
            ]
            ports.append({"name": "grpc", "containerPort": w.grpc_port})
        mounts = [{"name": "tenants", "mountPath": "/etc/herald/tenants", "readOnly": True}]
        volumes: list[dict[str, Any]] = [{"name": "tenants", "configMap": {"name": "herald-tenants"}}]
        if w.service in ("guard", "executor"):
            # the guard holds the signing key; the executor only the public keys
            mounts.append({"name": "keys", "mountPath": "/etc/herald/keys", "readOnly": True})
            volumes.append({"name": "keys", "secret": {"secretName": f"herald-{w.service}-keys"}})
        if w.service == "ingest":
            # the tenants' ingest tokens, one key per token, named in a tenant file as
            # `ingest_token_files: [/etc/herald/ingest-tokens/<key>]`; mounted whole (no subPath) so a rotated
            # token reaches the running pods. Optional: without it no tenant can name a token file, and the
            # ingress in front must authenticate senders to /v1/events and /v1/inbound
            mounts.append({"name": "ingest-tokens", "mountPath": "/etc/herald/ingest-tokens", "readOnly": True})
            volumes.append(
                {"name": "ingest-tokens", "secret": {"secretName": "herald-ingest-tokens", "optional": True}}
            )
        if w.service == "executor":
            # generated images; a ReadWriteMany claim shared by the replicas (and whatever serves the assets)
            mounts.append({"name": "assets", "mountPath": "/var/lib/herald/assets"})
            volumes.append({"name": "assets", "persistentVolumeClaim": {"claimName": "herald-assets"}})
            # the relay's login (submission on 587 wants one): the password as a mounted file, not an environment
            # variable, so it is not in the pod spec's env and a rotated secret reaches new connections unrestarted;
            # the Secret is optional: without it the executor does not log in (a relay inside the cluster)
            env += [
                {
                    "name": f"{prefix}SMTP_USERNAME",
                    "valueFrom": {
                        "secretKeyRef": {"name": "herald-executor-smtp", "key": "username", "optional": True}
                    },
                },
                {"name": f"{prefix}SMTP_PASSWORD_FILE", "value": "/etc/herald/smtp/password"},
            ]
            mounts.append({"name": "smtp", "mountPath": "/etc/herald/smtp", "readOnly": True})
            volumes.append(
                {
                    "name": "smtp",
                    "secret": {
                        "secretName": "herald-executor-smtp",
                        "items": [{"key": "password", "path": "password"}],
                        "optional": True,
                    },
                }
            )
        documents.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": w.replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {
                            "labels": labels,
                            "annotations": {
                                "prometheus.io/scrape": "true",
                                "prometheus.io/port": str(w.http_port),
                                "prometheus.io/path": "/metrics",
                            },
                        },
                        "spec": {
                            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                            "containers": [
                                {
                                    "name": w.service,
                                    "image": IMAGE,
                                    "command": [f"herald-{w.service}"],
                                    "envFrom": [{"configMapRef": {"name": "herald"}}],
                                    "env": env,
                                    "ports": ports,
                                    "readinessProbe": {
                                        "httpGet": {"path": "/readyz", "port": "http"},
                                        "periodSeconds": 5,
                                    },
                                    "livenessProbe": {
                                        "httpGet": {"path": "/healthz", "port": "http"},
                                        "periodSeconds": 10,
                                    },
                                    "resources": {
                                        "requests": {"cpu": "250m", "memory": "256Mi"},
                                        "limits": {"memory": "1Gi"},
                                    },
                                    "volumeMounts": mounts,
                                }
                            ],
                            "volumes": volumes,
                            "terminationGracePeriodSeconds": 30,
                        },
                    },
                },
            }
        )
        if w.public_http or w.grpc_port:
            service_ports = [{"name": "http", "port": w.http_port, "targetPort": "http"}]
            if w.grpc_port:
                service_ports.append({"name": "grpc", "port": w.grpc_port, "targetPort": "grpc"})
            documents.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"selector": labels, "ports": service_ports},
                }
            )
    return documents


def _dump_all(documents: list[dict[str, Any]]) -> str:
    header = "# Generated by `make generate` from herald-core (herald_core/generate.py); do not edit.\n"
    return header + str(yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True))


def write(root: Path) -> list[Path]:
    written = []
    schemas_dir = root / "docs" / "schemas"
    schemas_dir.mkdir(parents=True, exist_ok=True)
    for message_type, schema in json_schemas().items():
        path = schemas_dir / f"{message_type}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    outputs = {
        root / "docs" / "asyncapi.yaml": "# Generated by `make generate` from herald-core; do not edit.\n"
        + yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True),
        root / "deploy" / "k8s" / "kafka-topics.yaml": _dump_all(kafka_topics()),
        root / "deploy" / "k8s" / "kafka-users.yaml": _dump_all(kafka_users()),
        root / "deploy" / "k8s" / "herald.yaml": _dump_all(kubernetes_workloads()),
    }
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args()
    for path in write(args.root):
        print(path.relative_to(args.root))


if __name__ == "__main__":
    main()
