"""Networks of the methods, in the official layouts (AttGAN, STGAN, StarGAN) and shared blocks."""
from .attgan import AttGANDiscriminator, AttGANGenerator
from .stargan import StarGANDiscriminator, StarGANGenerator
from .stgan import STGANDiscriminator, STGANGenerator

__all__ = [
    "AttGANGenerator", "AttGANDiscriminator", "STGANGenerator", "STGANDiscriminator",
    "StarGANGenerator", "StarGANDiscriminator",
]
