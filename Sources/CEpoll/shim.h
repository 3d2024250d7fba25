// Exposes the Linux epoll, eventfd and getrandom calls that Glibc's Swift module does not.
// No logic here.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
