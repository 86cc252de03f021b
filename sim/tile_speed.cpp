// Free-running speed of the Verilated tile: inputs always valid, outputs always ready.
// Usage: Vtop CYCLES -> prints "cycles outputs seconds". Used by memxbar.sim.bench.
// Verilator escapes the double underscore of Amaranth port names as ___05F.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "Vtop.h"
#include "verilated.h"

int main(int argc, char **argv) {
    long cycles = argc > 1 ? std::atol(argv[1]) : 1000000;
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
    top->x___05Fvalid = 1;
    top->x___05Fpayload = 1;
    top->y___05Fready = 1;
    long outputs = 0;
    auto start = std::chrono::steady_clock::now();
    for (long c = 0; c < cycles; c++) {
        top->clk = 0;
        top->eval();
        outputs += top->y___05Fvalid;  // ready is held high: every valid cycle is a transfer
        top->clk = 1;
        top->eval();
    }
    std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
    std::printf("%ld %ld %.6f\n", cycles, outputs, seconds.count());
    top->final();
    delete top;
    return 0;
}
