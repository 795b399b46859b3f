"""Provisioning: identity, keys and certificates, partitions, production firmware, eFuse lock-down, for units that passed."""  # noqa: E501
