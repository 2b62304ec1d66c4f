"""Checks what can be checked of the deployment files without Docker or a
Kubernetes API server: the Kubernetes manifests against the API's schemas
(kubernetes-validate, offline, strict), and docker-compose.yml for consistency
(every reference resolves; the cluster nodes' names, ports and addresses agree).

    python3 deploy/check.py [MANIFESTS] [COMPOSE_FILE]   # from the repository's root
"""

import subprocess
import sys

import yaml

K8S_VERSION = "1.33.0"


def kubernetes(path):
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "--quiet", "-k", K8S_VERSION, path],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return [f"{path}: {result.stdout}{result.stderr}".strip()]
    return []


def compose(path):
    problems = []
    with open(path) as f:
        spec = yaml.safe_load(f)
    services = spec["services"]
    volumes = set(spec.get("volumes") or {})
    host_ports = {}
    node_ids = {}
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        for dependency in service.get("depends_on") or {}:
            if dependency not in services:
                problems.append(f"{name}: depends on unknown service {dependency}")
            elif set(services[dependency].get("profiles") or []) - set(service.get("profiles") or []):
                problems.append(f"{name}: depends on {dependency}, which only runs in another profile")
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if not source.startswith(("/", ".")) and source not in volumes:
                problems.append(f"{name}: volume {source} is not declared")
        for port in service.get("ports") or []:
            published = port.rsplit(":", 1)[0]
            if published in host_ports:
                problems.append(f"{name}: host port {published} also used by {host_ports[published]}")
            host_ports[published] = name
        env = service.get("environment") or {}
        if isinstance(env, dict) and "HOPLINE_ROLE" in env:
            node = env.get("HOPLINE_NODE_ID")
            if node in node_ids:
                problems.append(f"{name}: node id {node} also used by {node_ids[node]}")
            node_ids[node] = name
            if env.get("HOPLINE_ADVERTISE_ADDR") != f"{name}:16686":
                problems.append(f"{name}: advertises {env.get('HOPLINE_ADVERTISE_ADDR')}, not {name}:16686")
            for key in ["HOPLINE_OBJECT_STORE", "HOPLINE_METASTORE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]:
                if key not in env:
                    problems.append(f"{name}: {key} is missing")
            command = service.get("command") or []
            ingests = env["HOPLINE_ROLE"] in ("ingest", "all")
            if ingests != ("--otlp-http-addr" in command):
                problems.append(f"{name}: role {env['HOPLINE_ROLE']} and its OTLP listeners disagree")
    roles = sorted(
        (s.get("environment") or {}).get("HOPLINE_ROLE")
        for s in services.values()
        if isinstance(s.get("environment"), dict) and "HOPLINE_ROLE" in s["environment"]
    )
    if roles != ["ingest", "ingest", "janitor", "search", "search"]:
        problems.append(f"cluster profile roles: {roles}")
    return problems


def main():
    manifests, compose_file = (sys.argv[1:] + [None, None])[:2]
    problems = kubernetes(manifests or "deploy/kubernetes/hopline.yaml") + compose(
        compose_file or "docker-compose.yml"
    )
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    print("deploy files: ok")


if __name__ == "__main__":
    main()
