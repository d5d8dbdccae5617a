#!/usr/bin/python3
"""The PyTorch reference for examples/classify_words.c: the same data, split,
model and training, to measure both back to back on one machine.

    /usr/bin/python3 examples/classify_words_pytorch.py                 # 60 s, 2 threads
    /usr/bin/python3 examples/classify_words_pytorch.py --seconds 60 --threads 2 --dropout 0

Data: examples/data/words/words.tsv, lines "word<TAB>language"; the first
20,000 lines train, the last 5,000 validate. Model: an embedding of the 256
byte values (32), a bidirectional nn.GRU (64 units per direction) over
pack_padded_sequence of each batch's byte lengths, the final states of
both directions joined, dropout (training only), nn.Linear to the five
languages, F.cross_entropy. Adam 3e-3, batches of 64 in an order shuffled
every epoch, clip_grad_norm_(1). The training time counts the steps only,
as classify_words' does. Ends with "validation accuracy NN.N %".
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

LANGS = ["dutch", "english", "polish", "portuguese", "spanish"]
HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    words, labels = [], []
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            word, lang = line.split(b"\t")
            words.append(list(word))
            labels.append(LANGS.index(lang.decode()))
    return words, labels


def batch(words, labels, idx):
    lengths = torch.tensor([len(words[i]) for i in idx])
    ids = torch.zeros(len(idx), int(lengths.max()), dtype=torch.long)
    for j, i in enumerate(idx):
        ids[j, : len(words[i])] = torch.tensor(words[i])
    return ids, lengths, torch.tensor([labels[i] for i in idx])


class Model(torch.nn.Module):
    def __init__(self, embed, hidden, dropout):
        super().__init__()
        self.emb = torch.nn.Embedding(256, embed)
        self.gru = torch.nn.GRU(embed, hidden, bidirectional=True, batch_first=True)
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(2 * hidden, len(LANGS))

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.emb(ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, h_n = self.gru(packed)  # (2, m, hidden): forward, reverse
        return self.head(self.drop(torch.cat([h_n[0], h_n[1]], dim=1)))


def evaluate(model, words, labels, idx):
    model.eval()
    table = [[0] * len(LANGS) for _ in LANGS]
    with torch.no_grad():
        for k in range(0, len(idx), 500):
            ids, lengths, y = batch(words, labels, idx[k:k + 500])
            for t, p in zip(y.tolist(), model(ids, lengths).argmax(1).tolist()):
                table[t][p] += 1
    model.train()
    right = sum(table[k][k] for k in range(len(LANGS)))
    return 100.0 * right / len(idx), table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "data", "words", "words.tsv"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--validation", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    words, labels = load(a.data)
    n_train = len(words) - a.validation
    model = Model(a.embed, a.hidden, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    print("classify_words_pytorch: %d words (%d training, %d validation); torch %s, %d threads"
          % (len(words), n_train, a.validation, torch.__version__, a.threads))
    step, trained, smooth = 0, 0.0, None
    while trained < a.seconds:
        for k in torch.randperm(n_train).split(a.batch):
            if len(k) < a.batch or trained >= a.seconds:
                break
            t0 = time.perf_counter()
            ids, lengths, y = batch(words, labels, k.tolist())
            loss = F.cross_entropy(model(ids, lengths), y)
            opt.zero_grad()
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            opt.step()
            trained += time.perf_counter() - t0
            step += 1
            smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
            if step % 100 == 0:
                print("step %5d  loss %.4f  smooth %.4f  %6.2fk words/s  elapsed %.0f s"
                      % (step, loss.item(), smooth, step * a.batch / trained / 1000, trained))
    accuracy, table = evaluate(model, words, labels, list(range(n_train, len(words))))
    print("trained %d steps (%.1f epochs) in %.1f s" % (step, step * a.batch / n_train, trained))
    print("confusion (rows: the word's language, columns: the prediction)")
    print(" " * 11 + "".join(" %10.10s" % l for l in LANGS) + "   accuracy")
    for r, lang in enumerate(LANGS):
        print("%-11s" % lang + "".join(" %10d" % c for c in table[r])
              + "   %6.1f %%" % (100.0 * table[r][r] / max(1, sum(table[r]))))
    print("validation accuracy %.1f %%" % accuracy)


if __name__ == "__main__":
    main()
