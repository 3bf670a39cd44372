"""The embedded local stack: moto for the generic AWS services, our stand-ins for the rest."""
