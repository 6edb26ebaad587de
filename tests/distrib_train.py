"Train a tiny vit_learner for one epoch with fastai's distrib_ctx; run by tests/test_distributed.py under torchrun."
import os, sys, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
warnings.filterwarnings('ignore')
import torch
from fastai.vision.all import ImageDataLoaders, Resize, accuracy
from fastai.distributed import rank_distrib, num_distrib  # patches Learner.distrib_ctx
from vitzoo.data import digits_folder
from vitzoo.factory import build_model
from vitzoo.learner import vit_learner

out, data = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
dls = ImageDataLoaders.from_folder(data, valid='valid', item_tfms=Resize(32), bs=8, num_workers=0, seed=0)
model = build_model('vanilla_vit', load_pretrained=False, head=10, config_kwargs=dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8))
init = {k: v.clone() for k, v in model.state_dict().items()}
learn = vit_learner(dls, model, metrics=accuracy)
with learn.distrib_ctx(cpu=True), learn.no_bar(), learn.no_logging():
    learn.fit(1, 1e-3)
    n_train_batches = learn.n_iter if hasattr(learn, 'n_iter') else None
sd = {k: v.detach().cpu() for k, v in learn.model.state_dict().items()}
torch.save(dict(state=sd, init=init, world=num_distrib(), rank=rank_distrib(),
                backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None),
           os.path.join(out, f'rank{rank_distrib()}.pt'))
