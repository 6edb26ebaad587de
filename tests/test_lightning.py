"A vitzoo model trained by a Lightning `Trainer`, which never calls `.train()` itself: dropout must really be on."
import copy, warnings
import pytest
import torch
import torch.nn.functional as F
from torch import nn
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from vitzoo.factory import build_model, tiny_model
from vitzoo.model import VitZooModel
from vitzoo.transforms import checkpoint_transforms

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

def test_unfreeze_then_fit_again(tmp_path):
    "Frozen, then unfrozen: a second `fit` re-runs `configure_optimizers`, which now takes the backbone, and trains it"
    torch.manual_seed(0)
    lit = LitViT(freeze_backbone=True)
    _fit(lit, tmp_path)
    frozen = copy.deepcopy(lit.model.state_dict())
    lit.model.unfreeze_backbone()
    _fit(lit, tmp_path)
    after = lit.model.state_dict()
    assert not lit.model.backbone_frozen
    assert all(not torch.equal(frozen[k], after[k]) for k in after if k.startswith('backbone.') and k.endswith('weight'))

class LitDigits(L.LightningModule):
    "A `build_model` ViT whose validation accuracy `ModelCheckpoint` watches"
    def __init__(self, lr:float=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.val_hist = []
        self.model = build_model('vanilla_vit', load_pretrained=False, head=3, backbone_dropout=0.1, config_kwargs=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8))
    def forward(self, x): return self.model(x)
    def training_step(self, batch, i): return F.cross_entropy(self(batch[0]), batch[1])
    def validation_step(self, batch, i): self.log('val_loss', F.cross_entropy(self(batch[0]), batch[1]))
    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking: self.val_hist.append(self.trainer.callback_metrics['val_loss'].item())
    def configure_optimizers(self): return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

def test_model_checkpoint_and_save_pretrained(tmp_path):
    "`ModelCheckpoint`'s best file reloads that epoch's weights exactly; the `VitZooModel` inside saves and reloads without Lightning"
    torch.manual_seed(0)
    lit = LitDigits()
    ck = ModelCheckpoint(dirpath=tmp_path/'ckpt', monitor='val_loss', mode='min', save_top_k=1)
    trainer = L.Trainer(max_epochs=4, accelerator='cpu', devices=1, logger=False, callbacks=[ck], enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(lit, _loader(), _loader(16, seed=1))
    saved = torch.load(ck.best_model_path, weights_only=True)
    best = LitDigits.load_from_checkpoint(ck.best_model_path)
    assert saved['hyper_parameters']['lr'] == 3e-3 and 'optimizer_states' in saved
    assert all(torch.equal(saved['state_dict'][k], v) for k, v in best.state_dict().items())
    hist = lit.val_hist  # validation loss after each epoch: the file is the epoch with the lowest
    assert len(hist) == 4 and saved['epoch'] == hist.index(min(hist)) and abs(ck.best_model_score.item() - min(hist)) < 1e-6, hist
    best.model.save_pretrained(tmp_path/'vit')
    plain = VitZooModel.from_pretrained(tmp_path/'vit')
    x = torch.randn(4, 3, 32, 32)
    best.eval()
    with torch.no_grad(): assert torch.equal(plain(x), best(x))
    tfm = checkpoint_transforms(tmp_path/'vit')  # the checkpoint's preprocessing, at the size it was trained at
    assert tfm.size == (32, 32) and tfm.mean == (0.5, 0.5, 0.5)

def test_pytorch_lightning_package():
    "vit_zoo's README used `pytorch_lightning`: it trains a vitzoo model the same way; its modules are not `lightning`'s"
    pl = pytest.importorskip('pytorch_lightning')
    class PLViT(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = tiny_model('vanilla_vit', head=3)
        def training_step(self, batch, i): return F.cross_entropy(self.model(batch[0]), batch[1])
        def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=0.1)
    torch.manual_seed(0)
    m = PLViT()
    w = m.model.head.linear.weight.clone()
    pl.Trainer(max_epochs=1, accelerator='cpu', logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(m, _loader())
    assert not torch.equal(w, m.model.head.linear.weight)
    with pytest.raises(TypeError, match='must be a `LightningModule`'): L.Trainer(logger=False).fit(m, _loader())
