// Dumps the Verilated GaussianSource's Gaussians: Vtop KEY0 KEY1 STREAMS PER_STREAM.
// Stream r is seeded with counter (r, 0), like the tile's READ noise of MVM r; its first
// PER_STREAM values go to stdout as little-endian int16. Used by tests/test_noise_rtl.py.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s KEY0 KEY1 STREAMS PER_STREAM\n", argv[0]);
        return 2;
    }
    uint32_t key0 = std::strtoul(argv[1], nullptr, 0), key1 = std::strtoul(argv[2], nullptr, 0);
    long streams = std::atol(argv[3]), per_stream = std::atol(argv[4]);
    auto *top = new Vtop;
    auto tick = [top] {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
    };
    top->rst = 1;
    for (int i = 0; i < 4; i++) tick();
    top->rst = 0;
    top->key0 = key0;
    top->key1 = key1;
    top->counter1 = 0;
    std::vector<int16_t> out;
    out.reserve(per_stream);
    for (long r = 0; r < streams; r++) {
        top->counter0 = (uint32_t)r;
        top->seed = 1;
        top->z___05Fready = 0;
        tick();
        top->seed = 0;
        top->z___05Fready = 1;
        out.clear();
        while ((long)out.size() < per_stream) {
            top->clk = 0;
            top->eval();
            if (top->z___05Fvalid) out.push_back((int16_t)top->z___05Fpayload);
            top->clk = 1;
            top->eval();
        }
        std::fwrite(out.data(), sizeof(int16_t), out.size(), stdout);
    }
    top->final();
    delete top;
    return 0;
}
