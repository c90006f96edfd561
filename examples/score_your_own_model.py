"""Score your own model: a plain torch module, no smisbench subclass (README, "Score your own model")."""
import torch
from torch import nn


class Painter(nn.Module):
    codes, code_shape = "per_class", (8,)  # one 8-d code per class ("global": one per image)

    def __init__(self, classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, 8, 3, generator=torch.Generator().manual_seed(0)) / 8 ** 0.5)

    def forward(self, onehot, codes):  # B x C x H x W one-hot, B x C x 8 codes
        colour = torch.tanh(torch.einsum("bcd,cdk->bck", codes, self.weight))  # class c's colour from z_c alone
        return torch.einsum("bchw,bck->bkhw", onehot, colour)  # B x 3 x H x W in [-1, 1]


def build(config):  # for `smisbench score --model score_your_own_model.py:build`
    return Painter(config.label_nc)


if __name__ == "__main__":
    from smisbench.data.registry import build_dataset
    from smisbench.datasets_config import get_dataset_config
    from smisbench.metrics import EvalProtocol, evaluate

    config = get_dataset_config("synthetic")
    result = evaluate(build(config), build_dataset("synthetic", split="test"), config, ["mcsd_mocd", "lpips_diversity"],
                      EvalProtocol(n=8, m=4, diversity_maps=8, mask_mode="image"), progress=False)
    print({key: round(value, 4) for key, value in result.values.items()})
