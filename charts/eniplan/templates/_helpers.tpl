{{/* The chart's name: nameOverride, else the chart's. */}}
{{- define "eniplan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: fullnameOverride, else the release name when it contains the chart's
name, else "<release>-<name>". */}}
{{- define "eniplan.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "eniplan.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "eniplan.podLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The DaemonSet's selector: EKS's aws-node one with originalMatchLabels. */}}
{{- define "eniplan.selectorLabels" -}}
{{- if .Values.originalMatchLabels -}}
k8s-app: aws-node
{{- else -}}
app.kubernetes.io/name: {{ include "eniplan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- end -}}

{{/* The pods' labels: the selector's, and the chart's name and release (k8s-app: aws-node too with
originalMatchLabels, as EKS's aws-node pods carry it). */}}
{{- define "eniplan.podLabels" -}}
app.kubernetes.io/name: {{ include "eniplan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Values.originalMatchLabels }}
k8s-app: aws-node
{{- end -}}
{{- end -}}

{{- define "eniplan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "eniplan.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference from {repository, tag, digest}; the argument is a list of the image
value and the chart (for the appVersion default). */}}
{{- define "eniplan.imageRef" -}}
{{- $image := index . 0 -}}
{{- $chart := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "eniplan.image" -}}
{{- include "eniplan.imageRef" (list .Values.image .Chart) -}}
{{- end -}}

{{/* The installer's image: init.image's repository, tag and digest when set. Without a tag or
digest of its own it takes image's tag, and image's digest too when it is image's repository. */}}
{{- define "eniplan.initImage" -}}
{{- $i := .Values.init.image -}}
{{- $image := dict "repository" (default .Values.image.repository $i.repository) "tag" $i.tag "digest" $i.digest -}}
{{- if not (or $i.tag $i.digest) -}}
{{- $_ := set $image "tag" .Values.image.tag -}}
{{- if not $i.repository -}}
{{- $_ := set $image "digest" .Values.image.digest -}}
{{- end -}}
{{- end -}}
{{- include "eniplan.imageRef" (list $image .Chart) -}}
{{- end -}}

{{/* The installer's environment as a JSON object: the host CNI directories where the DaemonSet
mounts them, the variables of `env` that eniplan-cni install reads (docs/cni.md), then init.env
over them. */}}
{{- define "eniplan.installEnv" -}}
{{- $env := dict "HOST_CNI_BIN_PATH" "/host/opt/cni/bin" "HOST_CNI_CONFDIR_PATH" "/host/etc/cni/net.d" -}}
{{- range $k := list "AWS_VPC_ENI_MTU" "POD_MTU" "AWS_VPC_K8S_CNI_VETHPREFIX" "AWS_VPC_K8S_PLUGIN_LOG_FILE" "AWS_VPC_K8S_PLUGIN_LOG_LEVEL" "POD_SECURITY_GROUP_ENFORCING_MODE" "ENABLE_BANDWIDTH_PLUGIN" "ENIPLAN_IPAMD_SOCKET" "DISABLE_TCP_EARLY_DEMUX" -}}
{{- if hasKey $.Values.env $k -}}
{{- $_ := set $env $k (get $.Values.env $k) -}}
{{- end -}}
{{- end -}}
{{- mergeOverwrite $env .Values.init.env | toJson -}}
{{- end -}}

{{/* Whether the installer turns TCP early demux off (DISABLE_TCP_EARLY_DEMUX, in env or init.env). */}}
{{- define "eniplan.earlyDemuxOff" -}}
{{- $v := get (include "eniplan.installEnv" . | fromJson) "DISABLE_TCP_EARLY_DEMUX" | toString | lower -}}
{{- eq $v "true" -}}
{{- end -}}
