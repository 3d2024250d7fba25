// Exposes the Linux epoll and eventfd calls that Glibc's Swift module does not. No logic here.
#include <sys/epoll.h>
#include <sys/eventfd.h>
