"""Unit tests of the node's pure parts: image map, $(VAR) expansion, env, IPs, back-off."""

from __future__ import annotations

import json

import pytest
from modeldeploy_devcluster.node import (
    container,
    credentials,
    envexpand,
    images,
    ipalloc,
    podenv,
    probes,
)
from modeldeploy_devcluster.node.ipalloc import AddressesExhausted, IpAllocator, claim_block


class TestImageMap:
    @pytest.mark.parametrize(
        ("image", "repo"),
        [
            ("ghcr.io/modeldeploy/predictor:1.2.3", "ghcr.io/modeldeploy/predictor"),
            ("ghcr.io/modeldeploy/predictor@sha256:abc", "ghcr.io/modeldeploy/predictor"),
            ("localhost:5000/x/y:tag@sha256:abc", "localhost:5000/x/y"),
            ("localhost:5000/x/y", "localhost:5000/x/y"),
            ("busybox", "busybox"),
        ],
    )
    def test_repository_drops_tag_and_digest_only(self, image: str, repo: str) -> None:
        assert images.repository(image) == repo

    def test_defaults_map_project_images_to_console_scripts(self) -> None:
        mapping = images.load(env={})
        assert images.resolve(mapping, "ghcr.io/modeldeploy/predictor:v1", None, ["serve"]) == [
            "modeldeploy-predictor",
            "serve",
        ]
        # The router runs from the predictor image by overriding the command.
        argv = images.resolve(
            mapping, "ghcr.io/modeldeploy/predictor:v1", ["modeldeploy-router"], ["--port", "8080"]
        )
        assert argv == ["modeldeploy-router", "--port", "8080"]

    def test_unknown_image_names_the_way_out(self) -> None:
        with pytest.raises(images.ImageError, match=r"not in the devcluster image map.*--images"):
            images.resolve(images.load(env={}), "docker.io/nginx:1", None, None)

    def test_file_and_env_extend_and_override(self, tmp_path) -> None:
        f = tmp_path / "images.yaml"
        f.write_text("example.test/a: python -m http.server\nexample.test/b: [b1, b2]\n")
        env = {images.ENV_VAR: json.dumps({"example.test/b": {"entrypoint": "bb", "args": ["x"]}})}
        mapping = images.load(f, env)
        assert images.resolve(mapping, "example.test/a:1", None, None) == [
            "python",
            "-m",
            "http.server",
        ]
        assert images.resolve(mapping, "example.test/b", None, None) == ["bb", "x"]
        # Explicit empty args replace the image's default args, as in Kubernetes.
        assert images.resolve(mapping, "example.test/b", None, []) == ["bb"]

    def test_env_may_name_a_file(self, tmp_path) -> None:
        f = tmp_path / "m.json"
        f.write_text('{"example.test/c": ["c"]}')
        assert "example.test/c" in images.load(env={images.ENV_VAR: str(f)})

    def test_bad_entry_is_a_readable_error(self) -> None:
        with pytest.raises(ValueError, match=r"example\.test/bad"):
            images.parse({"example.test/bad": 42}, "test")


class TestExpansion:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("--host $(POD_IP)", "--host 127.0.0.7"),
            ("$(POD_IP):$(PORT)", "127.0.0.7:8080"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(POD_IP)", "$(POD_IP)"),
            ("cost $5", "cost $5"),
            ("end$", "end$"),
            ("$(unterminated", "$(unterminated"),
        ],
    )
    def test_kubernetes_rules(self, raw: str, expected: str) -> None:
        assert envexpand.expand(raw, {"POD_IP": "127.0.0.7", "PORT": "8080"}) == expected

    def test_env_sees_only_earlier_variables(self) -> None:
        env = envexpand.build_env(
            [("A", "x", None), ("B", "$(A)-$(C)", None), ("C", "c", None), ("D", None, "$(A)")]
        )
        assert env == {"A": "x", "B": "x-$(C)", "C": "c", "D": "$(A)"}


def _pod() -> dict:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u-1",
            "labels": {"app": "x"},
            "annotations": {},
        },
        "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
        "status": {"podIP": "127.0.0.3", "podIPs": [{"ip": "127.0.0.3"}], "hostIP": "127.0.0.1"},
    }


class TestContainerEnv:
    def test_field_refs_config_maps_and_secrets(self) -> None:
        def ref(path: str) -> dict:
            return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

        spec = {
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "NAME", **ref("metadata.name")},
                {"name": "NS", **ref("metadata.namespace")},
                {"name": "IP", **ref("status.podIP")},
                {"name": "NODE", **ref("spec.nodeName")},
                {"name": "SA", **ref("spec.serviceAccountName")},
                {"name": "APP", **ref("metadata.labels['app']")},
                {"name": "URL", "value": "http://$(IP):80"},
                {
                    "name": "PW",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}},
                },
                {
                    "name": "OPT",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "gone", "key": "k", "optional": True}
                    },
                },
            ],
        }
        env = podenv.container_env(
            _pod(),
            spec,
            lambda ns, name: {"k": "v"} if (ns, name) == ("ns", "cm") else None,
            lambda ns, name: {"pw": "hunter2"} if name == "s" else None,
        )
        assert env == {
            "CM_k": "v",
            "NAME": "p",
            "NS": "ns",
            "IP": "127.0.0.3",
            "NODE": "n1",
            "SA": "sa",
            "APP": "x",
            "URL": "http://127.0.0.3:80",
            "PW": "hunter2",
        }

    def test_missing_required_reference_is_an_error(self) -> None:
        spec = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
        with pytest.raises(podenv.EnvError, match='secret "s" not found'):
            podenv.container_env(_pod(), spec, lambda *_: None, lambda *_: None)

    def test_unsupported_field_is_named(self) -> None:
        with pytest.raises(podenv.EnvError, match=r"spec\.hostname"):
            podenv.field_ref(_pod(), "spec.hostname")


class TestIpAllocator:
    def test_lowest_free_first_and_reuse(self) -> None:
        alloc = IpAllocator()
        assert alloc.allocate("a") == "127.0.0.2"
        assert alloc.allocate("b") == "127.0.0.3"
        assert alloc.allocate("a") == "127.0.0.2"  # stable per pod
        alloc.release("a")
        assert alloc.allocate("c") == "127.0.0.2"
        assert alloc.in_use() == {"b": "127.0.0.3", "c": "127.0.0.2"}

    def test_skips_network_and_broadcast_like_addresses(self) -> None:
        alloc = IpAllocator(first=254, last=258)
        assert [alloc.allocate(k) for k in "abc"] == ["127.0.0.254", "127.0.1.1", "127.0.1.2"]

    def test_exhaustion_is_reported(self) -> None:
        alloc = IpAllocator(first=2, last=2)
        alloc.allocate("a")
        with pytest.raises(AddressesExhausted):
            alloc.allocate("b")


class TestRestartsAndProbes:
    def test_backoff_doubles_and_caps(self) -> None:
        delays = [container.backoff_delay(n) for n in range(0, 9)]
        assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]

    @pytest.mark.parametrize(
        ("policy", "code", "restart"),
        [
            ("Always", 0, True),
            ("Always", 1, True),
            ("OnFailure", 0, False),
            ("OnFailure", 2, True),
            ("Never", 2, False),
        ],
    )
    def test_restart_policy(self, policy: str, code: int, restart: bool) -> None:
        assert container.should_restart(policy, code) is restart

    def test_signalled_exit_codes_look_like_a_shell(self) -> None:
        assert container.exit_code(-9) == 137
        assert container.exit_code(-15) == 143
        assert container.exit_code(3) == 3

    def test_fallback_to_logs_takes_the_last_runs_tail(self) -> None:
        log = (
            "--- devcluster: starting ['a'] at t0\nold run\n"
            "--- devcluster: starting ['a'] at t1\nfirst\n"
            + "".join(f"line {i}\n" for i in range(100))
            + "--- devcluster: liveness probe failed, restarting\nserve: store error\n"
        )
        message = container.fallback_message(log)
        lines = message.splitlines()
        assert len(lines) == container.FALLBACK_LINES
        assert lines[-1] == "serve: store error" and "old run" not in message
        assert "devcluster" not in message
        assert len(container.fallback_message("x" * 5000).encode()) == container.FALLBACK_BYTES

    def test_probe_parse_resolves_named_port_and_defaults(self) -> None:
        spec = probes.parse({"httpGet": {"path": "/h", "port": "http"}}, "127.0.0.9", {"http": 81})
        assert (spec.kind, spec.host, spec.port, spec.path) == ("http", "127.0.0.9", 81, "/h")
        assert (spec.period, spec.failure_threshold, spec.success_threshold) == (10.0, 3, 1)
        with pytest.raises(probes.ProbeSpecError, match="named container port"):
            probes.parse({"tcpSocket": {"port": "nope"}}, "127.0.0.9", {})

    def test_probe_thresholds(self) -> None:
        spec = probes.ProbeSpec(kind="tcp", period=1, failure_threshold=2, initial_delay=5)
        state = probes.ProbeState(spec, started_at=100.0)
        assert not state.due(104.9) and state.due(105.0)
        assert state.record(True, 105) is True
        assert state.record(False, 106) is True  # one failure is below the threshold
        assert state.record(False, 107) is False
        assert state.record(True, 108) is True


def test_concurrent_nodes_claim_distinct_address_blocks(tmp_path) -> None:
    first, lock1 = claim_block(tmp_path)
    second, lock2 = claim_block(tmp_path)
    assert first.allocate("a") == "127.0.0.2"
    assert second.allocate("a") == "127.0.1.2"
    lock1.close()  # the first node went away: its block is free again
    third, lock3 = claim_block(tmp_path)
    assert third.allocate("a") == "127.0.0.2"
    lock2.close()
    lock3.close()


def test_addresses_someone_listens_on_are_skipped() -> None:
    proc_net_tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0200007F:1F90 00000000:0000 0A 00000000:00000000\n"  # 127.0.0.2:8080 LISTEN
        "   1: 0300007F:1F90 0100007F:D431 01 00000000:00000000\n"  # 127.0.0.3 ESTABLISHED
    )
    busy = ipalloc.parse_listeners(proc_net_tcp)
    assert busy == frozenset({"127.0.0.2"})
    assert IpAllocator().allocate("a", busy=busy) == "127.0.0.3"


class TestCredentials:
    def test_api_server_annotation_replaces_only_the_address(self, tmp_path) -> None:
        """A pod annotated with another API server address (a test's proxy) gets a
        kubeconfig naming it, with the same CA and token; others get the node's."""
        import yaml

        ca = tmp_path / "ca.crt"
        ca.write_text("ca")
        node_server = "https://127.0.0.1:6443"
        pod = {
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"serviceAccountName": "router"},
        }
        assert credentials.server_for(pod, node_server) == node_server
        proxied = {**pod, "metadata": {**pod["metadata"], "annotations": {
            credentials.API_SERVER_ANNOTATION: "https://127.0.0.1:7000"}}}  # fmt: skip
        written = yaml.safe_load(
            credentials.write(tmp_path / "p", proxied, "tok", node_server, ca).read_text()
        )
        assert written["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7000"
        assert written["users"][0]["user"]["token"] == "tok"
        plain = yaml.safe_load(
            credentials.write(tmp_path / "q", pod, "tok", node_server, ca).read_text()
        )
        assert plain["clusters"][0]["cluster"]["server"] == node_server
