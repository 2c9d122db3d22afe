"""The project's Kubernetes ingress controller (and, in ``mesh``, its admission webhook)."""
