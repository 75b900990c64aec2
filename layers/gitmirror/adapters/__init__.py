"""Adapters: the implementations of the ports (gitmirror.ports) on real infrastructure."""
