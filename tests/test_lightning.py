"A vitzoo model trained by a Lightning `Trainer`, which never calls `.train()` itself: dropout must really be on."
import copy, warnings
import pytest
import torch
import torch.nn.functional as F
from torch import nn
import lightning as L
from vitzoo.factory import tiny_model

warnings.filterwarnings('ignore', message='.*does not have many workers.*')
warnings.filterwarnings('ignore', message='.*(GPU|TPU|HPU) available.*')

class LitViT(L.LightningModule):
    "A tiny vitzoo ViT with backbone dropout, recording the mode its dropout layers ran in"
    def __init__(self, freeze_backbone:bool=False, lr:float=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.model = tiny_model('vanilla_vit', head=3, backbone_dropout=0.1)
        if freeze_backbone: self.model.backbone.requires_grad_(False)
        self.drops = {n: m for n, m in self.model.backbone.named_modules() if isinstance(m, nn.Dropout)}
        self._modes, self.log_ = [], {'fit': [], 'validate': []}
        for n, d in self.drops.items(): d.register_forward_hook(lambda mod, i, o, n=n: self._modes.append((n, mod.training)))

    def forward(self, x): return self.model(x)

    def _twice(self, x, stage):
        "Two forward passes of the same batch; records (dropout modes seen, whether the outputs differ)"
        self._modes.clear()
        a, b = self(x), self(x)
        self.log_[stage].append((list(self._modes), not torch.equal(a, b)))
        return a

    def training_step(self, batch, i):
        x, y = batch
        return F.cross_entropy(self._twice(x, 'fit'), y)

    def validation_step(self, batch, i): self._twice(batch[0], 'validate')

    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)

def _loader(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ds = torch.utils.data.TensorDataset(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 3, (n,), generator=g))
    return torch.utils.data.DataLoader(ds, batch_size=8, num_workers=0)

def _fit(module, tmp_path):
    trainer = L.Trainer(max_epochs=1, accelerator='cpu', devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, _loader(), _loader(16, seed=1))
    return trainer

def _check_modes(lit):
    assert len(lit.drops) == 3  # embeddings' and each of the 2 blocks' dropout
    fit, val = lit.log_['fit'], lit.log_['validate']
    assert len(fit) == 3 and len(val) >= 2, (len(fit), len(val))  # 3 training steps; sanity check + 2 validation steps
    for modes, differ in fit:  # every dropout layer ran in train mode, so two passes over one batch differ
        assert {n for n, _ in modes} == set(lit.drops) and all(t for _, t in modes), modes
        assert differ
    for modes, differ in val:  # and in eval mode during validation: deterministic
        assert {n for n, _ in modes} == set(lit.drops) and not any(t for _, t in modes), modes
        assert not differ

def test_dropout_active_in_training(tmp_path):
    torch.manual_seed(0)
    lit = LitViT()
    before = copy.deepcopy(lit.model.state_dict())
    _fit(lit, tmp_path)
    _check_modes(lit)
    after = lit.model.state_dict()
    assert not torch.equal(before['backbone.embeddings.patch_embeddings.projection.weight'], after['backbone.embeddings.patch_embeddings.projection.weight'])
    assert not torch.equal(before['head.linear.weight'], after['head.linear.weight'])

def test_frozen_backbone(tmp_path):
    torch.manual_seed(0)
    lit = LitViT(freeze_backbone=True)
    before = copy.deepcopy(lit.model.state_dict())
    _fit(lit, tmp_path)
    _check_modes(lit)  # frozen weights, but dropout still on in training, as in any nn.Module
    after = lit.model.state_dict()
    bb = [k for k in before if k.startswith('backbone.')]
    assert bb and all(torch.equal(before[k], after[k]) for k in bb)
    changed = [k for k in before if k.startswith('head.') and not torch.equal(before[k], after[k])]
    assert changed, 'the head did not train'

def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    lit = LitViT()
    trainer = _fit(lit, tmp_path)
    trainer.save_checkpoint(tmp_path/'vit.ckpt')
    lit2 = LitViT.load_from_checkpoint(tmp_path/'vit.ckpt')
    x = torch.randn(4, 3, 32, 32)
    lit.eval(); lit2.eval()
    with torch.no_grad(): p1, p2 = lit(x), lit2(x)
    assert p1.shape == (4, 3)
    assert torch.equal(p1, p2)
    assert lit2.hparams.lr == 0.1
