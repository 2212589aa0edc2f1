"""Endpoints of the datasets panel (see cnnlab/serve/__init__.py)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["datasets"])
