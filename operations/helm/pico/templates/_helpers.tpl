{{/* The name of every object: the release name, or release-chart when they differ. */}}
{{- define "pico.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select this release's pods. */}}
{{- define "pico.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "pico.labels" -}}
{{ include "pico.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* server.yaml: the chart's settings, with .Values.config merged over them. */}}
{{- define "pico.serverConfig" -}}
{{- $ports := .Values.ports -}}
{{- $chart := dict
  "proxy" (dict "bind_addr" (printf ":%v" $ports.proxy) "advertise_addr" (printf "${POD_IP}:%v" $ports.proxy))
  "upstream" (dict "bind_addr" (printf ":%v" $ports.upstream) "advertise_addr" (printf "${POD_IP}:%v" $ports.upstream))
  "admin" (dict "bind_addr" (printf ":%v" $ports.admin) "advertise_addr" (printf "${POD_IP}:%v" $ports.admin))
  "cluster" (dict
    "node_id_prefix" "${POD_NAME}-"
    "join" (list (include "pico.fullname" .))
    "gossip" (dict "bind_addr" (printf ":%v" $ports.gossip) "advertise_addr" (printf "${POD_IP}:%v" $ports.gossip)))
  "grace_period" (printf "%vs" .Values.gracePeriodSeconds)
-}}
{{- $tls := .Values.tls -}}
{{- $ports := $tls.ports | default list -}}
{{- $clientPorts := $tls.clientCertificatePorts | default list -}}
{{- if $tls.existingSecret -}}
{{- range $port := concat $ports $clientPorts -}}
{{- if not (has $port (list "proxy" "upstream" "admin")) -}}
{{- fail (printf "tls: %s is not a port that can serve TLS (proxy, upstream, admin)" $port) -}}
{{- end -}}
{{- end -}}
{{- range $port := $ports -}}
{{- $files := dict "cert" "/etc/pico/tls/tls.crt" "key" "/etc/pico/tls/tls.key" -}}
{{- if has $port $clientPorts -}}
{{- $_ := set $files "client_cas" "/etc/pico/tls/ca.crt" -}}
{{- end -}}
{{- $_ := set (get $chart $port) "tls" $files -}}
{{- end -}}
{{- range $port := $clientPorts -}}
{{- if not (has $port $ports) -}}
{{- fail (printf "tls.clientCertificatePorts: %s is not in tls.ports" $port) -}}
{{- end -}}
{{- end -}}
{{- if or (has "proxy" $ports) (has "admin" $ports) -}}
{{- $client := dict "root_cas" "/etc/pico/tls/ca.crt" "server_name" (include "pico.tlsServerName" .) -}}
{{- if or (has "proxy" $clientPorts) (has "admin" $clientPorts) -}}
{{- $_ := set $client "cert" "/etc/pico/tls/tls.crt" -}}
{{- $_ := set $client "key" "/etc/pico/tls/tls.key" -}}
{{- end -}}
{{- $proxyTLS := get $chart.proxy "tls" | default dict -}}
{{- $_ := set $proxyTLS "client" $client -}}
{{- $_ := set $chart.proxy "tls" $proxyTLS -}}
{{- end -}}
{{- else if $clientPorts -}}
{{- fail "tls.clientCertificatePorts needs tls.existingSecret" -}}
{{- end -}}
{{- if .Values.gossip.keysSecret -}}
{{- $_ := set $chart.cluster.gossip "secret_keys_file" "/etc/pico/gossip/keys" -}}
{{- end -}}
{{- if .Values.tenants.secret -}}
{{- $_ := set $chart.upstream "tenants_file" "/etc/pico/tenants/tenants.yaml" -}}
{{- $_ := set $chart.upstream "tenant_reservation" .Values.tenants.reservation -}}
{{- end -}}
{{- range $port := list "proxy" "upstream" "admin" -}}
{{- $auth := get $.Values.auth $port | default dict -}}
{{- $hmac := $auth.hmacSecret | default dict -}}
{{- $sources := 0 -}}
{{- $settings := dict -}}
{{- if $auth.jwksSecret -}}
{{- $sources = add1 $sources -}}
{{- $_ := set $settings "jwks" (dict "endpoint" (printf "file:///etc/pico/auth/%s/jwks.json" $port) "cache_ttl" $.Values.auth.jwksCacheTTL) -}}
{{- end -}}
{{- if $auth.jwksURL -}}
{{- $sources = add1 $sources -}}
{{- if not (hasPrefix "https://" $auth.jwksURL) -}}
{{- fail (printf "auth.%s.jwksURL: expected an https:// URL" $port) -}}
{{- end -}}
{{- $_ := set $settings "jwks" (dict "endpoint" $auth.jwksURL) -}}
{{- end -}}
{{- if $hmac.name -}}
{{- $sources = add1 $sources -}}
{{- if not $hmac.key -}}
{{- fail (printf "auth.%s.hmacSecret needs name and key" $port) -}}
{{- end -}}
{{- /* The secret goes in as a flag (the StatefulSet's args), never through the config
     file's ${VAR} expansion, where YAML would read it: a '#' would cut it short. */ -}}
{{- end -}}
{{- if gt $sources 1 -}}
{{- fail (printf "auth.%s: give one of jwksSecret, jwksURL and hmacSecret" $port) -}}
{{- end -}}
{{- if $settings -}}
{{- $_ := set (get $chart $port) "auth" $settings -}}
{{- end -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $chart (deepCopy .Values.config)) -}}
{{- end -}}

{{/* The DNS name every node's certificate carries, checked on node-to-node forwards. */}}
{{- define "pico.tlsServerName" -}}
{{- .Values.tls.serverName | default (printf "%s.%s.svc.cluster.local" (include "pico.fullname" .) .Release.Namespace) -}}
{{- end -}}

{{/* The probes' scheme: HTTPS when the admin port serves TLS. */}}
{{- define "pico.probeScheme" -}}
{{- if and .Values.tls.existingSecret (has "admin" (.Values.tls.ports | default list)) -}}
HTTPS
{{- end -}}
{{- end -}}
