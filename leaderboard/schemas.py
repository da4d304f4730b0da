"""Base of every ``*Public`` / ``*Create`` / ``*Update`` schema of the site's API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """API schemas: unknown input fields are an error; built from ORM objects by attribute."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
