"""Breaks 'streams': declares none."""

from bizon_core.source.rest import RestSource


class NoStreamsSource(RestSource):
    endpoints = {}
