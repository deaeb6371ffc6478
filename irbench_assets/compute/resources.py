"""The settings resource every asset reads (IRBENCH_HOME, profile, MIMIC root)."""

from __future__ import annotations

import dagster as dg

from irbench_assets.settings import Settings, get_settings


class IrbenchSettings(dg.ConfigurableResource):
    """Resolves :class:`~irbench_assets.settings.Settings`; unset fields fall back to the IRBENCH_* variables."""

    home: str | None = None
    profile: str | None = None
    mimic_root: str | None = None

    def get(self) -> Settings:
        return get_settings(self.home, self.profile, self.mimic_root)
