"""Command lines of the control-plane components (pure).

Only the controllers the project needs run (see CONTROLLERS), leader
election is off (one replica of everything), and every component binds to
127.0.0.1 on ports picked by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modeldeploy_devcluster.binaries import Binaries
from modeldeploy_devcluster.pki import Pki
from modeldeploy_devcluster.state import Layout

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

# Controllers of kube-controller-manager that run here. Workloads and their
# endpoints, garbage collection, namespaces (deletion empties them), service
# accounts and their tokens, the root CA ConfigMap pods may mount, RBAC role
# aggregation. Not here: node lifecycle (the one node never goes away),
# volumes, cloud and certificate controllers.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "job-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "endpoints-controller",
    "garbage-collector-controller",
    "pod-garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "resourcequota-controller",
    "disruption-controller",
    "clusterrole-aggregation-controller",  # admin/edit/view pick up aggregated rules
    "service-cidr-controller",
    "ttl-after-finished-controller",
    "cronjob-controller",
)


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    prometheus: int


def etcd(b: Binaries, layout: Layout, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(b.etcd),
        "--name=devcluster",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=devcluster={peer}",
        # A throwaway test store: durability across power loss is not wanted,
        # speed on a busy 2-core machine is.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver(b: Binaries, layout: Layout, ports: Ports, pki: Pki) -> list[str]:
    return [
        str(b.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={layout.pki}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # No kube-proxy: nothing would route the `kubernetes` Service anyway.
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager(
    b: Binaries, layout: Layout, ports: Ports, pki: Pki, kubeconfig: Path
) -> list[str]:
    return [
        str(b.kube_controller_manager),
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={layout.root / 'kcm-certs'}",
        "--leader-elect=false",
        f"--controllers={','.join(CONTROLLERS)}",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca.cert}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # The default 20 QPS per controller client makes the deployment
        # controller the bottleneck with hundreds of Deployments (scale bench).
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--profiling=false",
        "--v=1",
    ]


def scheduler(b: Binaries, layout: Layout, ports: Ports, kubeconfig: Path) -> list[str]:
    return [
        str(b.kube_scheduler),
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        f"--cert-dir={layout.root / 'scheduler-certs'}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def prometheus(b: Binaries, layout: Layout, ports: Ports, config: Path) -> list[str]:
    return [
        str(b.prometheus),
        f"--config.file={config}",
        f"--storage.tsdb.path={layout.prometheus_data}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{ports.prometheus}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
