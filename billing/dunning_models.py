"""The path migration 0003 names the dunning policy's list defaults by (migrations are not edited);
the models are in `billing.models.dunning`."""

from billing.models.dunning import default_channels, default_offsets

__all__ = ["default_channels", "default_offsets"]
