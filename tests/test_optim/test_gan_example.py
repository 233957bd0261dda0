"""MMEngine's "Train a GAN" tutorial (seed 002) with only the imports changed to kiln: several optimizers in an
OptimWrapperDict, a custom ``train_step``, trained by the Runner.

The tutorial downloads MNIST; offline, the dataset below serves 28x28 grayscale crops of the vendored BCCD
images instead (same record format: ``dict(inputs=uint8 (1, 28, 28))``). The tutorial's ``mmcv.transforms
.to_tensor`` is replaced by ``torch.from_numpy``. Epochs/batch size/workers are reduced for the test budget.
"""
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kiln.dataset import BaseDataset

BCCD = Path(__file__).parents[2] / 'data' / 'bccd'


def to_tensor(x):
    return torch.from_numpy(x)


class MNISTDataset(BaseDataset):
    """Stands in for the tutorial's MNIST dataset: grayscale BCCD cell crops, resized to 28x28."""

    def __init__(self, data_root, pipeline, test_mode=False, n_images=3, max_samples=32):
        self.n_images, self.max_samples = n_images, max_samples
        super().__init__(data_root=data_root, pipeline=pipeline, test_mode=test_mode)

    @staticmethod
    def totensor(img):
        if len(img.shape) < 3:
            img = np.expand_dims(img, -1)
        img = np.ascontiguousarray(img.transpose(2, 0, 1))
        return to_tensor(img)

    def load_data_list(self):
        ids = (Path(self.data_root) / 'ImageSets' / 'Main' / 'train.txt').read_text().split()[:self.n_images]
        crops = []
        for img_id in ids:
            root = ET.parse(Path(self.data_root) / 'Annotations' / f'{img_id}.xml').getroot()
            with Image.open(Path(self.data_root) / 'JPEGImages' / f'{img_id}.jpg') as im:
                gray = im.convert('L')
                for box in root.iter('bndbox'):
                    x1, y1, x2, y2 = (int(float(box.findtext(k))) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
                    crops.append(gray.crop((x1, y1, x2, y2)).resize((28, 28)))
        return [dict(inputs=self.totensor(np.array(x))) for x in crops[:self.max_samples]]


def test_gan_tutorial_runs_with_kiln(tmp_path):
    # ---------------------------------------------------------------- tutorial code, imports changed
    import torch.nn as nn
    import torch.nn.functional as F

    from kiln.model import BaseModel, ImgDataPreprocessor
    from kiln.optim import OptimWrapper, OptimWrapperDict
    from kiln.runner import Runner

    dataset = MNISTDataset(str(BCCD), [])

    NUM_WORKERS = 0
    BATCH_SIZE = 16

    train_dataloader = dict(
        batch_size=BATCH_SIZE,
        num_workers=NUM_WORKERS,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dataset)
    train_dataloader = Runner.build_dataloader(train_dataloader)

    class Generator(nn.Module):
        def __init__(self, noise_size, img_shape):
            super().__init__()
            self.img_shape = img_shape
            self.noise_size = noise_size

            def block(in_feat, out_feat, normalize=True):
                layers = [nn.Linear(in_feat, out_feat)]
                if normalize:
                    layers.append(nn.BatchNorm1d(out_feat, 0.8))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                return layers

            self.model = nn.Sequential(
                *block(noise_size, 128, normalize=False),
                *block(128, 256),
                *block(256, 512),
                *block(512, 1024),
                nn.Linear(1024, int(np.prod(img_shape))),
                nn.Tanh(),
            )

        def forward(self, z):
            img = self.model(z)
            img = img.view(img.size(0), *self.img_shape)
            return img

    class Discriminator(nn.Module):
        def __init__(self, img_shape):
            super().__init__()

            self.model = nn.Sequential(
                nn.Linear(int(np.prod(img_shape)), 512),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(512, 256),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(256, 1),
                nn.Sigmoid(),
            )

        def forward(self, img):
            img_flat = img.view(img.size(0), -1)
            validity = self.model(img_flat)

            return validity

    generator = Generator(100, (1, 28, 28))
    discriminator = Discriminator((1, 28, 28))

    data_preprocessor = ImgDataPreprocessor(mean=([127.5]), std=([127.5]))

    class GAN(BaseModel):

        def __init__(self, generator, discriminator, noise_size,
                     data_preprocessor):
            super().__init__(data_preprocessor=data_preprocessor)
            assert generator.noise_size == noise_size
            self.generator = generator
            self.discriminator = discriminator
            self.noise_size = noise_size

        def train_step(self, data, optim_wrapper):
            # Acquiring and preprocessing data
            inputs_dict = self.data_preprocessor(data, True)
            # Training the discriminator
            disc_optimizer_wrapper = optim_wrapper['discriminator']
            with disc_optimizer_wrapper.optim_context(self.discriminator):
                log_vars = self.train_discriminator(inputs_dict,
                                                    disc_optimizer_wrapper)

            # Training the generator
            set_requires_grad(self.discriminator, False)
            gen_optimizer_wrapper = optim_wrapper['generator']
            with gen_optimizer_wrapper.optim_context(self.generator):
                log_vars_gen = self.train_generator(inputs_dict,
                                                    gen_optimizer_wrapper)

            set_requires_grad(self.discriminator, True)
            log_vars.update(log_vars_gen)

            return log_vars

        def forward(self, batch_inputs, data_samples=None, mode=None):
            return self.generator(batch_inputs)

        def disc_loss(self, disc_pred_fake, disc_pred_real):
            losses_dict = dict()
            losses_dict['loss_disc_fake'] = F.binary_cross_entropy(
                disc_pred_fake, 0. * torch.ones_like(disc_pred_fake))
            losses_dict['loss_disc_real'] = F.binary_cross_entropy(
                disc_pred_real, 1. * torch.ones_like(disc_pred_real))

            loss, log_var = self.parse_losses(losses_dict)
            return loss, log_var

        def gen_loss(self, disc_pred_fake):
            losses_dict = dict()
            losses_dict['loss_gen'] = F.binary_cross_entropy(
                disc_pred_fake, 1. * torch.ones_like(disc_pred_fake))
            loss, log_var = self.parse_losses(losses_dict)
            return loss, log_var

        def train_discriminator(self, inputs, optimizer_wrapper):
            real_imgs = inputs['inputs']
            z = torch.randn(
                (real_imgs.shape[0], self.noise_size)).type_as(real_imgs)
            with torch.no_grad():
                fake_imgs = self.generator(z)

            disc_pred_fake = self.discriminator(fake_imgs)
            disc_pred_real = self.discriminator(real_imgs)

            parsed_losses, log_vars = self.disc_loss(disc_pred_fake,
                                                     disc_pred_real)
            optimizer_wrapper.update_params(parsed_losses)
            return log_vars

        def train_generator(self, inputs, optimizer_wrapper):
            real_imgs = inputs['inputs']
            z = torch.randn(real_imgs.shape[0], self.noise_size).type_as(real_imgs)

            fake_imgs = self.generator(z)

            disc_pred_fake = self.discriminator(fake_imgs)
            parsed_loss, log_vars = self.gen_loss(disc_pred_fake)

            optimizer_wrapper.update_params(parsed_loss)
            return log_vars

    def set_requires_grad(nets, requires_grad=False):
        if not isinstance(nets, list):
            nets = [nets]
        for net in nets:
            if net is not None:
                for param in net.parameters():
                    param.requires_grad = requires_grad

    model = GAN(generator, discriminator, 100, data_preprocessor)

    opt_g = torch.optim.Adam(generator.parameters(), lr=0.0001, betas=(0.5, 0.999))
    opt_g_wrapper = OptimWrapper(opt_g)

    opt_d = torch.optim.Adam(
        discriminator.parameters(), lr=0.0001, betas=(0.5, 0.999))
    opt_d_wrapper = OptimWrapper(opt_d)

    opt_wrapper_dict = OptimWrapperDict(
        generator=opt_g_wrapper, discriminator=opt_d_wrapper)

    gen_before = [p.detach().clone() for p in generator.parameters()]
    disc_before = [p.detach().clone() for p in discriminator.parameters()]

    train_cfg = dict(by_epoch=True, max_epochs=2)
    runner = Runner(
        model,
        work_dir=str(tmp_path / 'runs' / 'gan'),
        train_dataloader=train_dataloader,
        train_cfg=train_cfg,
        optim_wrapper=opt_wrapper_dict)
    runner.train()
    # ---------------------------------------------------------------- checks
    assert len(dataset) == 32  # two full batches per epoch (BatchNorm1d needs more than one sample)
    assert runner.optim_wrapper is opt_wrapper_dict and runner.iter == 2 * len(train_dataloader)
    assert all(not torch.equal(p, b) for p, b in zip(generator.parameters(), gen_before))
    assert all(not torch.equal(p, b) for p, b in zip(discriminator.parameters(), disc_before))
    assert all(p.requires_grad for p in discriminator.parameters())
    hub = runner.message_hub
    for key in ('train/loss_disc_fake', 'train/loss_disc_real', 'train/loss_gen'):
        assert torch.isfinite(torch.as_tensor(hub.get_scalar(key).current()))
    ckpt = torch.load(Path(runner.work_dir) / 'epoch_2.pth', weights_only=True)
    assert set(ckpt['optimizer']) == {'generator', 'discriminator'}
    assert ckpt['optimizer']['generator']['param_groups'][0]['lr'] == 0.0001
