// A C++ program built against the installed library (tests/test_install.c
// compiles it with g++ and `pkg-config --cflags --libs tapegrad`): an LSTM
// reads a sequence of +1/-1 and says, at every step, whether the sum so far
// is positive. It prints the loss before and after training and exits 0
// only when the loss has dropped below half of the first one.
#include <tapegrad/tapegrad.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

const int kSteps = 120, kHidden = 16, kBatch = 8, kLength = 12;

// Fail loudly: a downstream program never drops a status.
void check(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "train.cpp: %s failed: %s\n", what, tg_last_error());
        std::exit(1);
    }
}

// One batch: x (1, m, T) of +-1 and the class of each step's running sum.
void draw_batch(tg_rng *rng, tg_tensor *x, std::vector<int32_t> &targets)
{
    for (int s = 0; s < kBatch; s++) {
        int sum = 0;
        for (int t = 0; t < kLength; t++) {
            int v = tg_rng_below(rng, 2) ? 1 : -1;
            sum += v;
            const int64_t at[] = {0, s, t};
            tg_tensor_set(x, at, v);
            targets[static_cast<size_t>(s * kLength + t)] = sum > 0 ? 1 : 0;
        }
    }
}

} // namespace

int main()
{
    std::printf("tapegrad %s (headers %s)\n", tg_version(), TG_VERSION_STRING);
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_recurrent *lstm = tg_recurrent_new(TG_CELL_LSTM, 1, kHidden, TG_F32, nullptr, &rng);
    tg_linear *head = tg_linear_new(kHidden, 2, TG_F32, "W", "b", TG_INIT_XAVIER, &rng);
    check(lstm && head, "building the model");
    tg_params params = {};
    check(tg_params_extend(&params, "lstm.", &lstm->params) == TG_OK &&
              tg_params_extend(&params, "head.", &head->params) == TG_OK,
          "collecting the parameters");
    tg_adam_options options = tg_adam_defaults(0.02);
    tg_adam *adam = tg_adam_new(&params, &options);
    check(adam != nullptr, "tg_adam_new");

    tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(1, kBatch, kLength));
    check(x != nullptr, "tg_tensor_zeros");
    std::vector<int32_t> targets(static_cast<size_t>(kBatch * kLength));
    tg_tape *tape = tg_tape_new();
    double first = 0, last = 0;
    for (int step = 0; step < kSteps; step++) {
        draw_batch(&rng, x, targets);
        tg_tape_reset(tape);
        tg_params_zero_grad(&params);
        tg_tensor *a = tg_recurrent_forward(tape, lstm, x, nullptr, TG_PATH_FUSED, nullptr);
        tg_tensor *logits = tg_linear_forward(tape, head, a);
        tg_tensor *loss = tg_cross_entropy(tape, logits, 0, targets.data(),
                                           static_cast<int64_t>(targets.size()), TG_REDUCE_MEAN);
        check(tg_backward(tape, loss) == TG_OK && tg_adam_step(adam, tape) == TG_OK,
              "a training step");
        last = tg_tensor_item(loss);
        if (step == 0)
            first = last;
    }
    std::printf("loss %.4f -> %.4f\n", first, last);

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_adam_free(adam);
    tg_params_clear(&params);
    tg_linear_free(head);
    tg_recurrent_free(lstm);
    return last < 0.5 * first ? 0 : 1;
}
