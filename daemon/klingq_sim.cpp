// klingq-sim: placeholder until the simulator lands (issue 4).
#include <cstdio>
int main() {
  std::fprintf(stderr, "klingq-sim: not built yet\n");
  return 2;
}
