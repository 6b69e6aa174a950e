"""Sensors and simulators: the optical plant and its disturbance scenarios."""

from venom.plugins.sensors.plant import OpticalPlant, PlantConfig
from venom.plugins.sensors.scenario import BUILTIN, Disturbance, Scenario, load_scenario

__all__ = ["BUILTIN", "Disturbance", "OpticalPlant", "PlantConfig", "Scenario", "load_scenario"]
