__version__ = "0.0.1"

# The main names, imported on first use so that `import vitzoo` stays cheap (and never pulls in fastai).
_lazy = dict(build_model='factory', load_backbone='factory', CheckpointNotFoundError='factory', tiny_model='factory',
             VitZooModel='model', ViTModel='model', eager_attention='model',
             BaseHead='heads', LinearHead='heads', MLPHead='heads', IdentityHead='heads',
             list_models='registry', register_model='registry', get_spec='registry', ModelSpec='registry',
             save_model='save', load_model='save', register_head='save',
             vit_learner='learner', digits_folder='data',
             extract_embeddings='probe', linear_probe='probe', knn_classifier='probe',
             attention_maps='attention', attention_rollout='attention', attention_grid='attention',
             fast_inference='fast')
__all__ = list(_lazy)

def __getattr__(name):
    if name in _lazy:
        import importlib
        return getattr(importlib.import_module(f'{__name__}.{_lazy[name]}'), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def __dir__(): return sorted(list(globals()) + __all__)

# vit_zoo kept its registry at `vit_zoo.factory.registry`; `vitzoo.factory` is a module, so that path is an alias of
# `vitzoo.registry` (cheap: it imports no torch), for code ported from vit_zoo by renaming the package.
import sys as _sys
from . import registry as _registry
_sys.modules.setdefault(f'{__name__}.factory.registry', _registry)
