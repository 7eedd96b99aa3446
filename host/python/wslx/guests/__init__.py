"""Bootable guests: image selection plus a VM launcher plus the AgentX client."""
