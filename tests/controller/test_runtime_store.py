"""The in-memory stores: watch events and full lists agree, lists repair what a watch gap lost."""

from __future__ import annotations

from tests.controller.runtime_support import ingress
from tyk_controller.kube import INGRESSES, SECRETS, Store


def listed(body: dict) -> dict:
    """An item as a list response carries it: no apiVersion/kind."""
    return {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}


def test_list_items_and_watch_objects_are_stored_alike() -> None:
    changes: list[int] = []
    store = Store(INGRESSES, lambda: changes.append(1))
    body = ingress("shop") | {"metadata": {"name": "shop", "namespace": "default", "resourceVersion": "5"}}
    store.apply_event("ADDED", body)
    store.begin_list()
    store.end_list([listed(body)])
    assert store.items[("default", "shop")]["kind"] == "Ingress"
    assert store.items[("default", "shop")]["apiVersion"] == "networking.k8s.io/v1"
    assert len(changes) == 1  # the list found nothing new


def test_a_list_drops_what_is_gone_but_not_what_changed_during_the_list() -> None:
    store = Store(INGRESSES, lambda: None)
    for name in ("gone", "kept"):
        store.apply_event("ADDED", ingress(name))
    store.begin_list()
    store.apply_event("ADDED", ingress("created-during-list"))
    store.apply_event("DELETED", ingress("kept"))  # deleted while the (older) list was in flight
    store.end_list([listed(ingress("kept"))])
    assert set(store.items) == {("default", "created-during-list")}


def test_status_only_changes_do_not_wake_the_reconciler() -> None:
    changes: list[int] = []
    store = Store(INGRESSES, lambda: changes.append(1))
    body = ingress("shop")
    store.apply_event("ADDED", body)
    store.apply_event("MODIFIED", body | {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
    assert len(changes) == 1
    assert store.items[("default", "shop")]["status"]["loadBalancer"]["ingress"] == [{"ip": "1.2.3.4"}]
    store.apply_event("MODIFIED", ingress("shop", paths=("/x",)))
    assert len(changes) == 2


def test_only_tls_secrets_are_kept_and_only_their_keys() -> None:
    store = Store(SECRETS, lambda: None)
    meta = {"name": "s", "namespace": "default", "annotations": {"a": "b"}}
    store.apply_event(
        "ADDED", {"type": "Opaque", "metadata": meta | {"name": "opaque"}, "data": {"password": "eA=="}}
    )
    store.apply_event(
        "ADDED",
        {"type": "kubernetes.io/tls", "metadata": meta, "data": {"tls.crt": "Yw==", "tls.key": "aw=="}},
    )
    assert list(store.items) == [("default", "s")]
    assert "annotations" not in store.items[("default", "s")]["metadata"]
    store.apply_event("MODIFIED", {"type": "Opaque", "metadata": meta, "data": {}})  # no longer TLS: dropped
    assert not store.items
