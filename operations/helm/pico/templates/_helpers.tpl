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
{{- toYaml (mustMergeOverwrite $chart (deepCopy .Values.config)) -}}
{{- end -}}
